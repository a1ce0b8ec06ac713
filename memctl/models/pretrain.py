"""Reproduces the embedded model's weights from a seed, on CPU, from general-domain scenes.

    python -m memctl.models.pretrain --out memctl/models/weights        # the shipped weights
    python -m memctl.models.pretrain --out /tmp/w --vae-steps 3 --unet-steps 3 --scenes 64

Stage 1 trains the VAE to reconstruct (L1 + a small KL, as SD's autoencoder); stage 2 encodes
every scene once and trains the U-Net and the text encoder together on the noise-prediction
loss, dropping 10% of captions so classifier-free guidance works. Nothing here sees a
radiograph (memctl.models.scenes), so fine-tuning on the built-in chest-X-ray data is a real
domain shift. Weights are stored in fp16 (the wheel stays small) with their SHA-256.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

WEIGHTS_FILE = "tiny.safetensors"
CHECKSUM_FILE = "tiny.sha256"
CAPTION_DROPOUT = 0.1


def _log(msg: str) -> None:
    print(f"[pretrain] {msg}", file=sys.stderr, flush=True)


def _batches(n: int, batch: int, gen: torch.Generator):
    while True:
        yield from torch.randperm(n, generator=gen).split(batch)


def _lr(step: int, steps: int, peak: float, warmup: int = 50) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, steps - warmup)))


def _fit(name: str, opt: torch.optim.Optimizer, steps: int, loss_at: Callable[[], torch.Tensor],
         clip: list[torch.nn.Parameter] | None = None) -> None:
    """Warm-up + cosine schedule from each group's initial lr, one optimizer step per call of
    `loss_at` (which draws its own batch), a log line every 100 steps."""
    peaks, t0 = [g["lr"] for g in opt.param_groups], time.monotonic()
    for step in range(steps):
        for group, peak in zip(opt.param_groups, peaks, strict=True):
            group["lr"] = _lr(step, steps, peak)
        loss = loss_at()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(clip, 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            _log(f"{name} step {step + 1}/{steps} loss {loss.item():.5f} "
                 f"({time.monotonic() - t0:.0f} s)")


def _crops(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """One random size x size crop per image (the VAE is convolutional: crops train it at a
    quarter of the cost of whole images)."""
    top = torch.randint(0, x.shape[-2] - size + 1, (len(x),), generator=gen)
    left = torch.randint(0, x.shape[-1] - size + 1, (len(x),), generator=gen)
    return torch.stack([img[:, t:t + size, u:u + size]
                        for img, t, u in zip(x, top.tolist(), left.tolist(), strict=True)])


def train_vae(vae, images: torch.Tensor, steps: int, batch: int, gen: torch.Generator,
              lr: float = 2e-3, kl_weight: float = 1e-6, crop: int = 16) -> None:
    # Start with a small posterior variance: at the default init the sampled latent is mostly
    # noise (std 1) and the decoder spends hundreds of steps before it sees the signal.
    with torch.no_grad():
        vae.quant_conv.bias[vae.config.latent_channels:] = -8.0
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    order = _batches(len(images), batch, gen)

    def loss_at() -> torch.Tensor:
        x = _crops(images[next(order)], crop, gen)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=gen)).sample
        return F.l1_loss(recon, x) + kl_weight * posterior.kl().mean()

    _fit("vae", opt, steps, loss_at)


def tune_decoder(vae, latents: torch.Tensor, images: torch.Tensor, steps: int, batch: int,
                 gen: torch.Generator, lr: float = 5e-4) -> None:
    """Decoder only, on the encoder's fixed latent means, with an MSE loss: sharpens
    reconstructions (what the extraction attack compares) without moving the latent space
    the U-Net is trained in (as SD's ft-MSE decoder)."""
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    order = _batches(len(images), batch, gen)

    def loss_at() -> torch.Tensor:
        idx = next(order)
        return F.mse_loss(vae.decode(latents[idx]).sample, images[idx])

    _fit("decoder", opt, steps, loss_at)


@torch.no_grad()
def encode(vae, images: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    means, stds = [], []
    for chunk in images.split(batch):
        dist = vae.encode(chunk).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
    return torch.cat(means), torch.cat(stds)


def train_denoiser(unet, text_encoder, tokenizer, scheduler, latents: torch.Tensor,
                   latent_std: torch.Tensor, captions: list[str], steps: int, batch: int,
                   gen: torch.Generator, lr: float = 5e-4, text_lr: float = 2e-4) -> None:
    ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids
    empty = tokenizer([""], padding="max_length", max_length=tokenizer.model_max_length,
                      return_tensors="pt").input_ids
    opt = torch.optim.AdamW([{"params": unet.parameters(), "lr": lr},
                             {"params": text_encoder.parameters(), "lr": text_lr}],
                            weight_decay=1e-2)
    order = _batches(len(latents), batch, gen)

    def loss_at() -> torch.Tensor:
        idx = next(order)
        x0 = latents[idx] + latent_std[idx] * torch.randn(latents[idx].shape, generator=gen)
        tokens = ids[idx].clone()
        dropped = torch.rand(len(idx), generator=gen) < CAPTION_DROPOUT
        tokens[dropped] = empty
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(idx),), generator=gen)
        xt = scheduler.add_noise(x0, noise, t)
        return F.mse_loss(unet(xt, t, text_encoder(tokens)[0]).sample, noise)

    _fit("unet", opt, steps, loss_at, clip=[*unet.parameters(), *text_encoder.parameters()])


def save_weights(pipe, out_dir: Path, meta: dict) -> str:
    """Writes WEIGHTS_FILE (fp16) and CHECKSUM_FILE; returns the SHA-256."""
    from safetensors.torch import save_file

    tensors = {}
    for name in ("vae", "text_encoder", "unet"):
        for key, value in getattr(pipe, name).state_dict().items():
            tensors[f"{name}.{key}"] = value.detach().to(torch.float16).contiguous()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / WEIGHTS_FILE
    save_file(tensors, str(path), metadata={"memctl": json.dumps(meta, sort_keys=True)})
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (out_dir / CHECKSUM_FILE).write_text(f"{digest}  {WEIGHTS_FILE}\n")
    return digest


def pretrain(out_dir: Path, *, seed: int = 0, n_scenes: int = 4000, vae_steps: int = 2500,
             decoder_steps: int = 1000, unet_steps: int = 1000, batch: int = 16) -> dict:
    from memctl.models.scenes import scenes
    from memctl.models.tiny import RESOLUTION, build_tiny_pipeline

    # Tiny weights and Adam moments drift into denormal floats, which x86 CPUs handle an
    # order of magnitude slower; flushing them to zero changes nothing measurable.
    torch.set_flush_denormal(True)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    start = time.monotonic()
    pipe = build_tiny_pipeline(seed, pretrained=False)
    pixels, captions = scenes(n_scenes, RESOLUTION, seed)
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    _log(f"{n_scenes} general-domain scenes at {RESOLUTION} px")
    pipe.vae.train()
    train_vae(pipe.vae, images, vae_steps, batch, gen)
    pipe.vae.eval()
    means, stds = encode(pipe.vae, images)
    # Its own generator: the U-Net stage below draws exactly what it would without this one.
    tune_decoder(pipe.vae, means, images, decoder_steps, batch,
                 torch.Generator().manual_seed(seed + 1))
    pipe.vae.eval()
    # SD's scaling factor: unit-variance latents for the U-Net.
    scaling = float(1.0 / means.std())
    pipe.vae.register_to_config(scaling_factor=scaling)
    with torch.no_grad():
        recon = pipe.vae.decode(means[:256]).sample.clamp(-1, 1)
    recon_l2 = float(((recon - images[:256]) / 2).pow(2).mean((1, 2, 3)).sqrt().mean())
    _log(f"vae: scaling factor {scaling:.4f}, scene reconstruction l2 {recon_l2:.4f}")
    pipe.unet.train()
    pipe.text_encoder.train()
    train_denoiser(pipe.unet, pipe.text_encoder, pipe.tokenizer, pipe.scheduler,
                   means * scaling, stds * scaling, captions, unet_steps, batch, gen)
    meta = {"seed": seed, "scenes": n_scenes, "vae_steps": vae_steps,
            "decoder_steps": decoder_steps, "unet_steps": unet_steps,
            "batch": batch, "scaling_factor": scaling, "scene_recon_l2": round(recon_l2, 5),
            "seconds": round(time.monotonic() - start, 1)}
    meta["sha256"] = save_weights(pipe, out_dir, meta)
    _log(f"wrote {out_dir / WEIGHTS_FILE} ({meta['seconds']} s): {meta['sha256']}")
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the weights")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, default=4000, help="general-domain images")
    parser.add_argument("--vae-steps", type=int, default=2500)
    parser.add_argument("--decoder-steps", type=int, default=1000)
    parser.add_argument("--unet-steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    meta = pretrain(args.out, seed=args.seed, n_scenes=args.scenes, vae_steps=args.vae_steps,
                    decoder_steps=args.decoder_steps, unet_steps=args.unet_steps,
                    batch=args.batch)
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
