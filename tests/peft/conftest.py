from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel

TINY = dict(
    block_out_channels=(32, 32, 64, 64),
    layers_per_block=2,
    cross_attention_dim=32,
    attention_head_dim=8,
    norm_num_groups=8,
    sample_size=8,
)


def tiny_unet(seed: int = 0) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**TINY)
    # Random (not default zero/one) biases and norms, so that no layer is degenerate.
    with torch.no_grad():
        for p in unet.parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
    return unet.eval()


@pytest.fixture
def make_unet():
    return tiny_unet


@pytest.fixture
def unet() -> UNet2DConditionModel:
    return tiny_unet()


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 8, 8, generator=g)
    t = torch.tensor([10, 500])
    ctx = torch.randn(2, 5, 32, generator=g)
    return x, t, ctx
