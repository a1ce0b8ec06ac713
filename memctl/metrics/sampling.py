"""Batched DDIM / DPM-Solver sampling with classifier-free guidance from cached text embeddings.

The same denoising passes can also collect d_mem (Wen et al.), so scoring memorisation and
generating images for FID costs one set of U-Net calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from memctl.metrics._tensors import eval_mode, module_device, module_dtype


@dataclass(frozen=True)
class GenerationResult:
    images: torch.Tensor  # (N, C, H, W) float32 in [0, 1] on CPU
    dmem: float | None  # mean ||eps_c - eps_u|| over prompts and steps, if requested


@dataclass(frozen=True)
class SamplingSettings:
    """How generation samples: steps, guidance, seeds, batching, latent shape, sampler."""

    num_inference_steps: int = 50
    guidance_scale: float = 7.5
    seed: int = 0
    """Row i of the prompts starts from initial_noise(i, seed, ...)."""
    batch_size: int = 16
    latent_shape: tuple[int, ...] | None = None
    """None: the U-Net's own sample size (default_latent_shape)."""
    dtype: torch.dtype | None = None
    """U-Net compute dtype; None: the U-Net's parameter dtype."""
    sampler: str = "ddim"
    """One of SAMPLERS."""


DEFAULT_SAMPLING = SamplingSettings()


def initial_noise(index: int, seed: int, latent_shape: tuple[int, ...]) -> torch.Tensor:
    """Starting latent of sample ``index``: a CPU generator seeded ``seed + index``.

    Drawn on the CPU so a sample is the same on any device and in any batch.
    """
    gen = torch.Generator().manual_seed(seed + index)
    return torch.randn(latent_shape, generator=gen)


def default_latent_shape(unet: nn.Module) -> tuple[int, int, int]:
    size = unet.config.sample_size
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    return (unet.config.in_channels, h, w)


SAMPLERS = ("ddim", "dpm")
"""ddim: DDIM with eta 0 (Wen et al.'s d_mem setting); dpm: DPM-Solver++ (2M), good images in
~20 steps."""


def make_scheduler(scheduler: object, num_inference_steps: int, sampler: str = "ddim"):
    """A fresh sampling scheduler from the caller's (training) scheduler config; the
    caller's object is never touched by set_timesteps."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    cls = DDIMScheduler if sampler == "ddim" else DPMSolverMultistepScheduler
    sched = cls.from_config(scheduler.config)
    sched.set_timesteps(num_inference_steps)
    return sched


def denoise(
    unet: nn.Module,
    scheduler: object,
    prompt_embeds: torch.Tensor,
    empty_embeds: torch.Tensor,
    settings: SamplingSettings = DEFAULT_SAMPLING,
    *,
    return_dmem: bool = False,
) -> tuple[torch.Tensor, float | None]:
    """DDIM (eta 0) or DPM-Solver with CFG; returns final latents (N, *latent_shape) on CPU,
    and d_mem.

    Row i of ``prompt_embeds`` starts from ``initial_noise(i, seed, ...)``. d_mem is
    ||eps_c - eps_u||_2 over the whole latent, in float32, averaged over steps and rows.
    """
    num_inference_steps, guidance_scale = settings.num_inference_steps, settings.guidance_scale
    seed, batch_size, sampler = settings.seed, settings.batch_size, settings.sampler
    if prompt_embeds.ndim != 3 or empty_embeds.shape[0] != 1:
        raise ValueError(
            f"need prompt_embeds (N, L, D) and empty_embeds (1, L, D), got "
            f"{tuple(prompt_embeds.shape)} and {tuple(empty_embeds.shape)}"
        )
    device = module_device(unet)
    dtype = settings.dtype or module_dtype(unet)
    shape = (tuple(settings.latent_shape) if settings.latent_shape is not None
             else default_latent_shape(unet))
    out, norm_sum, norm_count = [], torch.zeros((), dtype=torch.float64, device=device), 0
    with eval_mode(unet):
        for start in range(0, len(prompt_embeds), batch_size):
            cond = prompt_embeds[start : start + batch_size].to(device, dtype)
            n = len(cond)
            uncond = empty_embeds.to(device, dtype).expand(n, -1, -1)
            context = torch.cat([uncond, cond])
            sched = make_scheduler(scheduler, num_inference_steps, sampler)
            noise = [initial_noise(start + i, seed, shape) for i in range(n)]
            latents = torch.stack(noise).to(device) * sched.init_noise_sigma
            for t in sched.timesteps:
                model_in = sched.scale_model_input(torch.cat([latents, latents]), t)
                pred = unet(model_in.to(dtype), t, encoder_hidden_states=context).sample
                eps_u, eps_c = pred.float().chunk(2)
                diff = eps_c - eps_u
                if return_dmem:
                    # Summed on the device: no host sync per step.
                    norm_sum += diff.flatten(1).norm(dim=1).double().sum()
                    norm_count += n
                eps = eps_u + guidance_scale * diff
                latents = sched.step(eps, t, latents).prev_sample
            out.append(latents.float().cpu())
    dmem = float(norm_sum) / norm_count if return_dmem and norm_count else None
    return torch.cat(out), dmem


def decode(vae: nn.Module, latents: torch.Tensor, *, batch_size: int = 16) -> torch.Tensor:
    """Latents (already scaled by the VAE factor) -> images float32 in [0, 1] on CPU."""
    device, dtype = module_device(vae), module_dtype(vae)
    images = []
    with eval_mode(vae):
        for start in range(0, len(latents), batch_size):
            z = latents[start : start + batch_size].to(device, dtype)
            x = vae.decode(z / vae.config.scaling_factor).sample
            images.append((x.float() / 2 + 0.5).clamp(0, 1).cpu())
    return torch.cat(images)


def generate(
    unet: nn.Module,
    vae: nn.Module,
    scheduler: object,
    prompt_embeds: torch.Tensor,
    empty_embeds: torch.Tensor,
    settings: SamplingSettings = DEFAULT_SAMPLING,
    *,
    return_dmem: bool = False,
) -> GenerationResult:
    """One image per row of ``prompt_embeds`` (repeat rows for several generations).

    Sample i uses seed ``seed + i``, so images do not depend on ``batch_size``. The caller's
    scheduler only provides the config for a DDIM scheduler (SD's config works); ``dtype``
    is the U-Net compute dtype (default: the U-Net's parameter dtype).
    """
    latents, dmem = denoise(unet, scheduler, prompt_embeds, empty_embeds, settings,
                            return_dmem=return_dmem)
    return GenerationResult(decode(vae, latents, batch_size=settings.batch_size), dmem)
