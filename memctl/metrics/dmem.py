"""d_mem (Wen et al., ICLR 2024): how much the text condition moves the noise prediction.

value = ||eps(x_t, e_prompt) - eps(x_t, e_empty)||_2 over the whole latent (the raw U-Net
output, i.e. eps for epsilon-prediction models). It grows ~sqrt(latent size), so values and
thresholds do not transfer across resolutions. Both variants run with the U-Net in eval mode
(no CFG dropout) and fixed seeds, and average over samples and timesteps instead of taking
one random timestep and a batch max as the official MemControl code did.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from memctl.metrics._tensors import eval_mode, module_device, module_dtype
from memctl.metrics.sampling import DEFAULT_SAMPLING, SamplingSettings, denoise

# Evenly spread over the 1000-step training schedule, from mostly-clean to mostly-noise.
DEFAULT_TIMESTEPS = (100, 300, 500, 700, 900)


def noise_seed(seed: int, sample_index: int, timestep: int) -> int:
    """Seed of the noise added to sample ``sample_index`` at ``timestep``.

    Hashing (seed, index, t) keeps every pair's noise fixed and independent of batching and of
    which other timesteps are evaluated.
    """
    return int(np.random.SeedSequence([seed, sample_index, timestep]).generate_state(1)[0])


def _noise(shape: torch.Size, seed: int, sample_index: int, timestep: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(noise_seed(seed, sample_index, timestep))
    return torch.randn(shape, generator=gen)


def d_mem_noised(
    unet: nn.Module,
    latents: torch.Tensor,
    prompt_embeds: torch.Tensor,
    empty_embeds: torch.Tensor,
    scheduler: object,
    *,
    timesteps: Sequence[int] = DEFAULT_TIMESTEPS,
    seed: int = 0,
    batch_size: int = 16,
    dtype: torch.dtype | None = None,
) -> float:
    """Noised-data d_mem: noise each clean training latent to each t and measure the gap.

    ``latents`` (N, 4, h, w) are clean latents already multiplied by the VAE scaling factor
    (use the latent distribution's mean), ``prompt_embeds`` (N, L, D) pair with them row by
    row, ``empty_embeds`` is (1, L, D). ``scheduler`` supplies add_noise (training schedule).
    Returns the mean over samples and timesteps. Cheap: one batched forward per
    (sample, t), no sampling trajectory.
    """
    if len(latents) != len(prompt_embeds) or empty_embeds.shape[0] != 1:
        raise ValueError(
            f"need N latents, N prompt embeddings and (1, L, D) empty embeddings, got "
            f"{len(latents)}, {len(prompt_embeds)} and {tuple(empty_embeds.shape)}"
        )
    if not timesteps:
        raise ValueError("timesteps must not be empty")
    device = module_device(unet)
    dtype = dtype or module_dtype(unet)
    # A copy: add_noise moves the schedule tensors to the latents' device in place.
    sched = type(scheduler).from_config(scheduler.config)
    items = [(i, int(t)) for i in range(len(latents)) for t in timesteps]
    total = 0.0
    with eval_mode(unet):
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            index = torch.tensor([i for i, _ in chunk])
            t = torch.tensor([t for _, t in chunk])
            # Noise is drawn and added on the CPU in float32: same x_t on any device.
            x0 = latents[index.to(latents.device)].float().cpu()
            noise = torch.stack([_noise(x0.shape[1:], seed, i, ti) for i, ti in chunk])
            x_t = sched.add_noise(x0, noise, t).to(device, dtype)
            n = len(chunk)
            cond = prompt_embeds[index.to(prompt_embeds.device)].to(device, dtype)
            context = torch.cat([cond, empty_embeds.to(device, dtype).expand(n, -1, -1)])
            pred = unet(
                torch.cat([x_t, x_t]), torch.cat([t, t]).to(device), encoder_hidden_states=context
            ).sample
            eps_c, eps_u = pred.float().chunk(2)
            total += float((eps_c - eps_u).flatten(1).norm(dim=1).sum())
    return total / len(items)


def d_mem(
    unet: nn.Module,
    prompt_embeds: torch.Tensor,
    empty_embeds: torch.Tensor,
    scheduler: object,
    settings: SamplingSettings = DEFAULT_SAMPLING,
    *,
    generations: int = 4,
) -> float:
    """Trajectory d_mem: CFG sampling with ``settings.sampler`` (DDIM by default, Wen et al.'s
    setting), gap recorded at every step.

    Each prompt gets ``generations`` trajectories; generation g of prompt i is row
    i * generations + g and starts from seed ``seed + i * generations + g``, exactly what
    ``sampling.generate`` would use on ``prompt_embeds.repeat_interleave(generations, 0)``.
    Returns the mean over steps, generations and prompts. Skips VAE decoding; to get images
    too, call ``generate(..., return_dmem=True)`` on the repeated embeddings instead.
    """
    repeated = prompt_embeds.repeat_interleave(generations, dim=0)
    _, value = denoise(unet, scheduler, repeated, empty_embeds, settings, return_dmem=True)
    assert value is not None
    return value
