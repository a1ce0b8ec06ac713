"""The fine-tuning loop on cached latents and text embeddings.

Reads only the cache (latents are sampled from the stored mean/logvar every step, so no
image is ever re-encoded), trains exactly the parameters handed in, and logs
`metrics.jsonl`. Seeded: the same config and data give the same losses.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from memctl.config import TrainConfig
from memctl.data.cache import CachedSet

StepCallback = Callable[[int, int, float], None]


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    samples_per_s: float = 0.0


def lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.lr_schedule == "cosine":
            progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return factor


class BatchSampler:
    """Seeded epoch-wise shuffling over the set's rows (repeats in the set stay repeats)."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size = n, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.order = torch.empty(0, dtype=torch.long)

    def next(self) -> torch.Tensor:
        while len(self.order) < self.batch_size:
            self.order = torch.cat([self.order, torch.randperm(self.n, generator=self.gen)])
        batch, self.order = self.order[: self.batch_size], self.order[self.batch_size :]
        return batch


def diffusion_loss(
    unet: torch.nn.Module,
    noise_scheduler,
    latents: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    gen: torch.Generator,
) -> torch.Tensor:
    """Standard denoising loss at uniformly drawn timesteps (epsilon or v prediction)."""
    noise = torch.randn(latents.shape, generator=gen)
    t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],),
                      generator=gen)
    noisy = noise_scheduler.add_noise(latents, noise, t)
    pred = unet(noisy, t, encoder_hidden_states).sample
    if noise_scheduler.config.prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, t)
    else:
        target = noise
    return F.mse_loss(pred.float(), target.float())


def train(
    unet: torch.nn.Module,
    param_groups: Sequence[dict],
    data: CachedSet,
    noise_scheduler,
    cfg: TrainConfig,
    *,
    scaling_factor: float,
    out_dir: Path | None = None,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Runs cfg.steps optimizer steps of masked fine-tuning; returns the losses."""
    params = [p for g in param_groups for p in g["params"]]
    result = TrainResult()
    log_file = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        log_file = open(out_dir / "metrics.jsonl", "w")  # noqa: SIM115 - closed in finally
        os.chmod(out_dir / "metrics.jsonl", 0o600)
    unet.train()
    if not params:  # nothing may move (freeze, or an all-zeros mask): no optimizer, no steps
        unet.eval()
        return result
    optimizer = torch.optim.AdamW(param_groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    gen = torch.Generator().manual_seed(cfg.seed)
    sampler = BatchSampler(len(data), cfg.batch_size, cfg.seed)
    start = time.perf_counter()
    try:
        for step in range(cfg.steps):
            idx = sampler.next()
            std = torch.exp(0.5 * data.latent_logvar[idx])
            eps = torch.randn(std.shape, generator=gen)
            latents = (data.latent_mean[idx] + std * eps) * scaling_factor
            cond = data.prompt_embeds[data.prompt_index[idx]]
            loss = diffusion_loss(unet, noise_scheduler, latents, cond, gen)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {step}")
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            sched.step()
            optimizer.zero_grad(set_to_none=True)
            result.losses.append(loss.item())
            if log_file and (step % cfg.log_every == 0 or step == cfg.steps - 1):
                elapsed = time.perf_counter() - start
                log_file.write(json.dumps({
                    "step": step, "loss": result.losses[-1], "lr": sched.get_last_lr()[0],
                    "samples_per_s": (step + 1) * cfg.batch_size / elapsed, "dropped": 0,
                }) + "\n")
                log_file.flush()
            if on_step:
                on_step(step + 1, cfg.steps, result.losses[-1])
    finally:
        if log_file:
            log_file.close()
    result.seconds = time.perf_counter() - start
    result.samples_per_s = cfg.steps * cfg.batch_size / result.seconds
    unet.eval()
    return result
