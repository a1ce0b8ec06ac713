"""Tiny diffusers models built from config (random weights) for metric tests."""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

CONTEXT_DIM = 32
TOKENS = 4


@pytest.fixture(scope="session")
def unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=CONTEXT_DIM,
        attention_head_dim=8,
        norm_num_groups=8,
    ).eval()


@pytest.fixture(scope="session")
def vae() -> AutoencoderKL:
    torch.manual_seed(1)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=16,
        layers_per_block=1,
    ).eval()


@pytest.fixture
def scheduler() -> DDPMScheduler:
    # Stable Diffusion's training schedule.
    return DDPMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        clip_sample=False,
    )


@pytest.fixture
def embeds() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
    prompts = torch.randn(3, TOKENS, CONTEXT_DIM, generator=gen)
    empty = torch.randn(1, TOKENS, CONTEXT_DIM, generator=gen)
    return prompts, empty
