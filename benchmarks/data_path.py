"""Training from the HDF5 cache against encoding images and captions on the fly, in one run.

    .venv/bin/python benchmarks/data_path.py                 # embedded model + SD v1.5 size
    .venv/bin/python benchmarks/data_path.py --quick         # embedded model only
    .venv/bin/python benchmarks/data_path.py --device cuda --batch 8 --steps 10

For the embedded model (64 px) and an SD v1.5-size U-Net + VAE + CLIP-L text encoder at 224 px
(built from config, random weights), with the same PEFT method and batches:

1. training throughput (samples/s) of a PEFT step whose inputs come from
   - the cache held in memory (what the training loop does: one read before the loop),
   - the cache in its streaming mode for sets larger than memory: latents fp16 in memory,
     prompt embeddings read from HDF5 every step (load(..., prompts_on_disk=True)),
   - on the fly: decode JPEGs (thread pool), VAE-encode, tokenize and text-encode;
2. cache build rate (images/s) and bytes per image.

Images are radiograph-like JPEGs at 1024 x 1248 (MIMIC-CXR-JPG files are ~2500 x 3000).
Prints ratios, asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from memctl import peft
from memctl.data.cache import CacheReader
from memctl.data.cache_build import Encoders, build_cache, default_workers
from memctl.data.images import load_image
from memctl.data.sources import Record, read_csv_manifest
from memctl.data.synth import write_synth_dataset
from memctl.models.arch import build_unet

# Stable Diffusion v1.5 `vae/config.json` and the CLIP ViT-L/14 text tower, written out.
SD15_VAE = dict(in_channels=3, out_channels=3, latent_channels=4,
                down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4,
                block_out_channels=(128, 256, 512, 512), layers_per_block=2, act_fn="silu",
                norm_num_groups=32, sample_size=512, scaling_factor=0.18215)
SD15_TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                 num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                 hidden_act="quick_gelu", projection_dim=768)


@dataclass
class Model:
    name: str
    resolution: int
    unet: torch.nn.Module
    enc: Encoders
    scheduler: object


def tiny_model(device: str) -> Model:
    from memctl.models.tiny import RESOLUTION, build_tiny_pipeline

    pipe = build_tiny_pipeline()
    enc = Encoders(pipe.vae.to(device), pipe.tokenizer, pipe.text_encoder.to(device), device)
    return Model("embedded", RESOLUTION, pipe.unet.to(device), enc, pipe.scheduler)


def sd15_model(device: str) -> Model:
    from diffusers import AutoencoderKL, DDPMScheduler
    from transformers import CLIPTextConfig, CLIPTextModel

    from memctl.models.tiny import build_tokenizer

    torch.manual_seed(0)
    tokenizer = build_tokenizer()  # offline; ids stay inside CLIP's vocabulary
    tokenizer.model_max_length = SD15_TEXT["max_position_embeddings"]
    text = CLIPTextModel(CLIPTextConfig(**SD15_TEXT)).to(device).requires_grad_(False)
    vae = AutoencoderKL(**SD15_VAE).to(device).requires_grad_(False)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                          beta_schedule="scaled_linear", clip_sample=False)
    return Model("sd15", 224, build_unet("sd15").to(device), Encoders(vae, tokenizer, text,
                                                                      device), sched)


def write_images(folder: Path, n: int) -> list[tuple[str, str]]:
    """(path, caption) of n radiograph-like 1024 x 1248 JPEGs (synth images, upscaled)."""
    manifest = write_synth_dataset(folder / "synth", n=n, seed=0)
    rng = np.random.default_rng(0)
    out = []
    for rec in read_csv_manifest(manifest):
        with Image.open(rec.path) as im:
            big = np.asarray(im.convert("L").resize((1024, 1248), Image.Resampling.BICUBIC))
        noisy = np.clip(big + rng.normal(0, 4, big.shape), 0, 255).astype(np.uint8)
        path = folder / (Path(rec.path).stem + ".jpg")
        Image.fromarray(noisy).save(path, quality=92)
        out.append((str(path), rec.caption))
    return out


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


Batch = Callable[[list[int]], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def throughput(m: Model, opt: torch.optim.Optimizer, feeds: dict[str, Batch],
               batches: list[list[int]], device: str, warmup: int = 1) -> dict[str, float]:
    """Samples/s of PEFT training steps per feed. Feeds take turns step by step, so load
    from other processes (or clock changes) hits them alike; the first `warmup` untimed."""
    gen = torch.Generator(device).manual_seed(0)
    scale = m.enc.vae.config.scaling_factor
    n_t = m.scheduler.config.num_train_timesteps
    m.unet.train()
    seconds = dict.fromkeys(feeds, 0.0)
    feeding = dict.fromkeys(feeds, 0.0)
    for k, idx in enumerate(batches):
        for name, feed in feeds.items():
            sync(device)
            start = time.perf_counter()
            mean, logvar, cond = (x.to(device) for x in feed(idx))
            sync(device)
            fed = time.perf_counter() - start
            eps = torch.randn(mean.shape, generator=gen, device=device)
            latents = (mean + torch.exp(0.5 * logvar) * eps) * scale
            noise = torch.randn(latents.shape, generator=gen, device=device)
            t = torch.randint(0, n_t, (len(idx),), generator=gen, device=device)
            pred = m.unet(m.scheduler.add_noise(latents, noise, t), t, cond).sample
            torch.nn.functional.mse_loss(pred, noise).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            sync(device)
            if k >= warmup:
                seconds[name] += time.perf_counter() - start
                feeding[name] += fed
    samples = sum(len(idx) for idx in batches[warmup:])
    steps = len(batches) - warmup
    return {**{name: samples / s for name, s in seconds.items()},
            **{f"{name}_feed_ms": 1e3 * s / steps for name, s in feeding.items()}}


def bench(m: Model, images: list[tuple[str, str]], work: Path, device: str, batch: int,
          steps: int) -> dict:
    out = work / f"{m.name}.h5"
    recs = [Record(p, c, f"s{i}") for i, (p, c) in enumerate(images)]
    sync(device)
    t0 = time.perf_counter()
    build_cache(out, recs, ["train"] * len(recs), m.enc, m.name, m.resolution, batch_size=32)
    sync(device)
    build_s = time.perf_counter() - t0
    reader = CacheReader(out)
    rng = np.random.default_rng(0)
    batches = [sorted(rng.choice(len(recs), size=batch, replace=False).tolist())
               for _ in range(steps + 1)]
    in_memory = reader.load(range(len(recs)))
    pool = ThreadPoolExecutor(default_workers())

    def from_memory(idx):
        i = torch.as_tensor(idx)
        return (in_memory.latent_mean[i], in_memory.latent_logvar[i],
                in_memory.prompt_embeds[in_memory.prompt_index[i]])

    # The full-split mode: latents fp16 in memory, prompt embeddings read per step from HDF5.
    streaming = reader.load(range(len(recs)), dtype=torch.float16, prompts_on_disk=True)

    def from_hdf5(idx):
        i = torch.as_tensor(idx)
        return (streaming.latent_mean[i].float(), streaming.latent_logvar[i].float(),
                streaming.prompt_embeds[streaming.prompt_index[i]].float())

    def on_the_fly(idx):
        pixels = torch.stack(list(pool.map(lambda i: load_image(images[i][0], m.resolution),
                                           idx)))
        mean, logvar = m.enc.encode_images(pixels)
        cond, _ = m.enc.encode_text([images[i][1] for i in idx])
        return mean, logvar, cond

    # attention q,k,v,out of all 16 blocks: the config's default method, all bits on.
    adapter = peft.apply(m.unet, "attention", [1] * peft.num_bits(m.unet, "blocks16"))
    opt = torch.optim.AdamW(adapter.param_groups(1e-5), lr=1e-5)
    rates = throughput(m, opt, {"memory": from_memory, "hdf5": from_hdf5,
                                "fly": on_the_fly}, batches, device)
    pool.shutdown()
    info = reader.info()
    latent = 2 * 2 * int(np.prod(in_memory.latent_mean.shape[1:]))
    prompt = 2 * int(np.prod(in_memory.prompt_embeds.shape[1:]))
    return {**rates, "build_ips": len(recs) / build_s, "file_bpi": info["bytes"] / len(recs),
            "latent_bpi": latent, "prompt_bytes": prompt, "n": len(recs),
            "captions": info["unique_captions"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="embedded model only")
    ap.add_argument("--models", default="embedded,sd15", help="comma-separated subset")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="timed steps (after 1 warm-up)")
    ap.add_argument("--images", type=int, default=0,
                    help="images per cache (default: 2 batches, at least 16)")
    args = ap.parse_args()
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.set_grad_enabled(True)
    n = args.images or max(16, args.batch * 2)
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, "
          f"decode threads {default_workers()}, batch {args.batch}, {args.steps} timed steps, "
          f"PEFT: attention q,k,v,out of all 16 blocks, fp32"
          + (" (TF32)" if args.device == "cuda" else ""))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        images = write_images(work / "img", n)
        names = ["embedded"] if args.quick else args.models.split(",")
        builders = [{"embedded": tiny_model, "sd15": sd15_model}[name] for name in names]
        for build in builders:
            m = build(args.device)
            rows.append((m, bench(m, images, work, args.device, args.batch, args.steps)))
            del m
    print("\ntraining throughput, samples/s (higher is better)")
    print(f"  {'model':<9}{'px':>5}{'cache mem':>11}{'cache h5':>10}{'on the fly':>12}"
          f"{'h5 / fly':>10}{'mem / fly':>11}")
    for m, r in rows:
        print(f"  {m.name:<9}{m.resolution:>5}{r['memory']:>11.2f}{r['hdf5']:>10.2f}"
              f"{r['fly']:>12.2f}{r['hdf5'] / r['fly']:>9.2f}x{r['memory'] / r['fly']:>10.2f}x")
    print("\ninput time per step, ms (the rest of a step is the U-Net's forward and backward)")
    print(f"  {'model':<9}{'px':>5}{'cache mem':>11}{'cache h5':>10}{'on the fly':>12}")
    for m, r in rows:
        print(f"  {m.name:<9}{m.resolution:>5}{r['memory_feed_ms']:>11.1f}"
              f"{r['hdf5_feed_ms']:>10.1f}{r['fly_feed_ms']:>12.1f}")
    print("\ncache build")
    print(f"  {'model':<9}{'px':>5}{'images/s':>10}{'file B/img':>12}{'latent B/img':>14}"
          f"{'prompt B/caption':>18}")
    for m, r in rows:
        print(f"  {m.name:<9}{m.resolution:>5}{r['build_ips']:>10.2f}{r['file_bpi']:>12.0f}"
              f"{r['latent_bpi']:>14}{r['prompt_bytes']:>18}")
    print(f"  ({rows[0][1]['n']} images, {rows[0][1]['captions']} unique captions per cache; "
          f"file bytes include the prompt embeddings)")


if __name__ == "__main__":
    main()
