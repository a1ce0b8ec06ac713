import pytest
import torch
from diffusers import DDIMScheduler

from memctl.metrics import SamplingSettings, d_mem, d_mem_noised, generate
from memctl.metrics.dmem import noise_seed


def reference_d_mem(unet, prompts, empty, scheduler, steps, generations, guidance, seed):
    """One sample at a time, separate conditional and unconditional calls."""
    norms = []
    with torch.no_grad():
        for i in range(len(prompts)):
            for g in range(generations):
                ddim = DDIMScheduler.from_config(scheduler.config)
                ddim.set_timesteps(steps)
                gen = torch.Generator().manual_seed(seed + i * generations + g)
                x = torch.randn(1, 4, 8, 8, generator=gen)
                for t in ddim.timesteps:
                    eps_c = unet(x, t, encoder_hidden_states=prompts[i : i + 1]).sample
                    eps_u = unet(x, t, encoder_hidden_states=empty).sample
                    norms.append(torch.linalg.vector_norm(eps_c - eps_u).item())
                    eps = eps_u + guidance * (eps_c - eps_u)
                    x = ddim.step(eps, t, x).prev_sample
    return sum(norms) / len(norms)


def test_trajectory_d_mem_matches_explicit_loops(unet, scheduler, embeds):
    prompts, empty = embeds
    prompts = prompts[:2]
    expected = reference_d_mem(unet, prompts, empty, scheduler, 3, 2, 7.5, 5)
    got = d_mem(
        unet, prompts, empty, scheduler,
        SamplingSettings(num_inference_steps=3, seed=5, batch_size=3), generations=2
    )
    assert got == pytest.approx(expected, rel=1e-4)


def test_generate_collects_the_same_d_mem(unet, vae, scheduler, embeds):
    prompts, empty = embeds
    kw = dict(num_inference_steps=3, seed=5)
    separate = d_mem(unet, prompts, empty, scheduler, SamplingSettings(**kw), generations=2)
    shared = generate(
        unet, vae, scheduler, prompts.repeat_interleave(2, 0), empty, SamplingSettings(**kw),
        return_dmem=True
    )
    assert shared.dmem == pytest.approx(separate, rel=1e-5)


def test_empty_prompt_gives_zero(unet, scheduler, embeds):
    _, empty = embeds
    prompts = empty.expand(2, -1, -1)
    settings = SamplingSettings(num_inference_steps=2)
    assert d_mem(unet, prompts, empty, scheduler, settings) == pytest.approx(
        0.0, abs=1e-5
    )
    latents = torch.randn(2, 4, 8, 8)
    # Not exactly 0: batched kernels may round the cond and uncond rows differently.
    assert d_mem_noised(unet, latents, prompts, empty, scheduler) == pytest.approx(0.0, abs=1e-5)


def test_noised_d_mem_matches_explicit_loops(unet, scheduler, embeds):
    prompts, empty = embeds
    latents = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    timesteps = (50, 500, 950)
    alphas = scheduler.alphas_cumprod
    norms = []
    with torch.no_grad():
        for i in range(3):
            for t in timesteps:
                gen = torch.Generator().manual_seed(noise_seed(11, i, t))
                noise = torch.randn(4, 8, 8, generator=gen)
                x_t = alphas[t].sqrt() * latents[i] + (1 - alphas[t]).sqrt() * noise
                x_t = x_t[None].float()
                eps_c = unet(x_t, t, encoder_hidden_states=prompts[i : i + 1]).sample
                eps_u = unet(x_t, t, encoder_hidden_states=empty).sample
                norms.append(torch.linalg.vector_norm(eps_c - eps_u).item())
    expected = sum(norms) / len(norms)
    for batch_size in (2, 16):
        got = d_mem_noised(
            unet,
            latents,
            prompts,
            empty,
            scheduler,
            timesteps=timesteps,
            seed=11,
            batch_size=batch_size,
        )
        assert got == pytest.approx(expected, rel=1e-4)


def test_noise_seeds_are_distinct_per_sample_and_timestep():
    seeds = {noise_seed(0, i, t) for i in range(50) for t in range(0, 1000, 100)}
    assert len(seeds) == 500


def test_noised_d_mem_restores_training_mode(unet, scheduler, embeds):
    prompts, empty = embeds
    unet.train()
    try:
        d_mem_noised(unet, torch.randn(3, 4, 8, 8), prompts, empty, scheduler, timesteps=(10,))
        assert unet.training
    finally:
        unet.eval()
