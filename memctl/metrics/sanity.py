"""Checks that a testbed can show memorisation at all, before any model is trained on it.

Two conditions make the extraction attack meaningful: the VAE must reconstruct the data well
below the extraction threshold (else no generation can ever match a training image), and
distinct training images must lie beyond the threshold from each other (else ordinary output
near the data mean would count as replay).
"""

from __future__ import annotations

import torch

from memctl.metrics.tiled import tiled_l2


@torch.no_grad()
def vae_reconstruction_l2(vae, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Per image sqrt(mean((x - decode(encode(x)).mean)^2)) for images in [0, 1] (N, C, H, W)."""
    out = []
    for chunk in images.split(batch_size):
        x = chunk.to(vae.dtype) * 2 - 1
        recon = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
        out.append(((recon - x) / 2).float().pow(2).mean(dim=(1, 2, 3)).sqrt())
    return torch.cat(out)


def min_distinct_tiled_l2(images: torch.Tensor, keys: list[str], grid: int = 4) -> float:
    """Smallest tiled l2 between two images with different keys (paths): duplicates of one
    image are not distinct images."""
    dist = tiled_l2(images, images, grid=grid)
    same = torch.tensor([[a == b for b in keys] for a in keys])
    return float(dist.masked_fill(same, float("inf")).min())
