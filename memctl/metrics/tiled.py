"""Tiled normalised l2 distance between images (Carlini et al. 2023), for all pairs at once."""

from __future__ import annotations

import torch

from memctl.metrics._tensors import ArrayLike, as_float_tensor


def _bounds(size: int, grid: int) -> list[tuple[int, int]]:
    # Uneven sizes give tiles differing by one pixel instead of silently dropping a border.
    edges = [round(i * size / grid) for i in range(grid + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def tiled_l2(images_a: ArrayLike, images_b: ArrayLike, grid: int = 4) -> torch.Tensor:
    """All-pairs distance: max over the grid x grid corresponding tiles of sqrt(mean((a-b)^2)).

    Images are (N, C, H, W) in [0, 1] (uint8 is scaled). Returns (len(a), len(b)) in the
    input's float dtype. Per tile, ||a-b||^2 = ||a||^2 + ||b||^2 - 2 a.b is one matmul for all
    pairs; both sides are first centred on the same per-pixel mean (distances do not change)
    to limit float32 cancellation, and the result is clamped at 0. grid=1 gives the plain
    normalised l2 used to confirm extraction.
    """
    a, b = as_float_tensor(images_a), as_float_tensor(images_b)
    if a.ndim != 4 or b.ndim != 4 or a.shape[1:] != b.shape[1:]:
        raise ValueError(f"need (N, C, H, W) images of one shape, got {a.shape} and {b.shape}")
    _, _, height, width = a.shape
    if not 1 <= grid <= min(height, width):
        raise ValueError(f"grid={grid} must be between 1 and the image size {height}x{width}")
    dtype = torch.promote_types(a.dtype, b.dtype)
    b = b.to(a.device, dtype)
    a = a.to(dtype)
    worst = torch.zeros(len(a), len(b), dtype=dtype, device=a.device)
    for r0, r1 in _bounds(height, grid):
        for c0, c1 in _bounds(width, grid):
            ta = a[:, :, r0:r1, c0:c1].reshape(len(a), -1)
            tb = b[:, :, r0:r1, c0:c1].reshape(len(b), -1)
            centre = (ta.sum(0) + tb.sum(0)) / (len(ta) + len(tb))
            ta, tb = ta - centre, tb - centre
            sq = (ta * ta).sum(1)[:, None] + (tb * tb).sum(1)[None, :] - 2.0 * (ta @ tb.T)
            torch.maximum(worst, sq.div_(ta.shape[1]), out=worst)
    return worst.clamp_min_(0).sqrt_()


def normalised_l2(images_a: ArrayLike, images_b: ArrayLike) -> torch.Tensor:
    """All-pairs sqrt(mean((a-b)^2)) over whole images in [0, 1]."""
    return tiled_l2(images_a, images_b, grid=1)
