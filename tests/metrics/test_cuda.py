"""The same metrics on a GPU agree with the CPU (runs only where CUDA is available)."""

import pytest
import torch

from memctl.metrics import (
    SamplingSettings,
    amd,
    d_mem,
    d_mem_noised,
    extraction_attack,
    generate,
    tiled_l2,
)
from memctl.metrics.features import get_extractor

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_sampling_and_d_mem_match_cpu(unet, vae, scheduler, embeds):
    prompts, empty = embeds
    kw = SamplingSettings(num_inference_steps=3, seed=3)
    cpu = generate(unet, vae, scheduler, prompts, empty, kw, return_dmem=True)
    cpu_traj = d_mem(unet, prompts, empty, scheduler, kw, generations=2)
    latents = torch.randn(3, 4, 8, 8)
    cpu_noised = d_mem_noised(unet, latents, prompts, empty, scheduler)
    unet.cuda(), vae.cuda()
    try:
        gpu = generate(unet, vae, scheduler, prompts, empty, kw, return_dmem=True)
        gpu_traj = d_mem(unet, prompts, empty, scheduler, kw, generations=2)
        gpu_noised = d_mem_noised(unet, latents, prompts, empty, scheduler)
        all_on_gpu = d_mem_noised(unet, latents.cuda(), prompts.cuda(), empty.cuda(), scheduler)
    finally:
        unet.cpu(), vae.cpu()
    assert gpu.images.device.type == "cpu"
    torch.testing.assert_close(gpu.images, cpu.images, atol=2e-3, rtol=0)
    assert gpu.dmem == pytest.approx(cpu.dmem, rel=1e-3)
    assert gpu_traj == pytest.approx(cpu_traj, rel=1e-3)
    assert gpu_noised == pytest.approx(cpu_noised, rel=1e-3)
    assert all_on_gpu == pytest.approx(gpu_noised, rel=1e-6)


def test_distances_and_features_match_cpu():
    gen = torch.Generator().manual_seed(0)
    fake, train = torch.randn(300, 64, generator=gen), torch.randn(1000, 64, generator=gen)
    assert amd(fake.cuda(), train.cuda(), chunk=128) == pytest.approx(amd(fake, train), abs=1e-5)
    assert amd(fake, train, chunk=128, device="cuda") == pytest.approx(amd(fake, train), abs=1e-5)
    images = torch.rand(12, 3, 32, 32, generator=gen)
    # Near-zero distances: sqrt amplifies float32 rounding in the matmul.
    gpu_dist = tiled_l2(images.cuda(), images.cuda()).cpu()
    torch.testing.assert_close(gpu_dist, tiled_l2(images, images), atol=1e-3, rtol=0)
    result = extraction_attack([images.cuda()], [images[:2].cuda()], clique_size=1)
    assert result.records[0].extracted
    torch.testing.assert_close(
        get_extractor("tiny", device="cuda")(images),
        get_extractor("tiny")(images),
        atol=1e-4,
        rtol=1e-4,
    )
