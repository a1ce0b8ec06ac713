"""U-Net architectures built from their config alone: no weights, no network.

Used to count parameters (on the meta device: instant) and to benchmark at real size.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel

from memctl.errors import UserError

# Stable Diffusion v1.5 `unet/config.json`, written out so nothing is downloaded.
SD15_UNET: dict = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "up_block_types": (
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ),
    "only_cross_attention": False,
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "dual_cross_attention": False,
    "use_linear_projection": False,
    "upcast_attention": False,
}

SD15_UNET_PARAMS = 859_520_964

ARCHS: dict[str, dict] = {"sd15": SD15_UNET}


def unet_config(arch: str) -> dict:
    """A copy of the named architecture's U-Net config."""
    try:
        return dict(ARCHS[arch])
    except KeyError:
        raise UserError(f"arch: unknown {arch!r}; choose from {', '.join(ARCHS)}") from None


def build_unet(
    arch: str = "sd15", device: str | torch.device | None = None
) -> UNet2DConditionModel:
    """Randomly initialised U-Net of `arch`. device="meta" allocates nothing (shapes only)."""
    config = unet_config(arch)
    if device is None:
        return UNet2DConditionModel(**config)
    with torch.device(device):
        return UNet2DConditionModel(**config)
