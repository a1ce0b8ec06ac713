"""Average minimum cosine distance (AMD, Bai et al. 2021) from generated to training features."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from memctl.metrics._tensors import ArrayLike, as_float_tensor


def nearest_cosine_distance(
    fake_feats: ArrayLike,
    train_feats: ArrayLike,
    *,
    chunk: int = 4096,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Per generated sample, the minimum cosine distance (1 - cos) to any training sample.

    Chunked over both axes: peak extra memory is about chunk x chunk + 2 x chunk x D floats,
    whatever the set sizes (10k x 400k x 1024 included). Train chunks are the outer loop so
    each is normalised once. Returns a float64 CPU tensor of shape (N_fake,).
    """
    fake, train = as_float_tensor(fake_feats), as_float_tensor(train_feats)
    if fake.ndim != 2 or train.ndim != 2 or fake.shape[1] != train.shape[1]:
        raise ValueError(f"need (N, D) and (M, D) features, got {fake.shape} and {train.shape}")
    if len(fake) == 0 or len(train) == 0:
        raise ValueError("AMD needs at least one generated and one training feature row")
    dtype = torch.promote_types(fake.dtype, train.dtype)
    device = torch.device(device) if device is not None else fake.device
    best = torch.full((len(fake),), -torch.inf, dtype=dtype, device=device)
    for t0 in range(0, len(train), chunk):
        t_block = F.normalize(train[t0 : t0 + chunk].to(device, dtype), dim=1)
        for f0 in range(0, len(fake), chunk):
            f_block = F.normalize(fake[f0 : f0 + chunk].to(device, dtype), dim=1)
            sim = (f_block @ t_block.T).amax(dim=1)
            torch.maximum(best[f0 : f0 + chunk], sim, out=best[f0 : f0 + chunk])
    return (1.0 - best.double()).cpu()


def amd(
    fake_feats: ArrayLike,
    train_feats: ArrayLike,
    *,
    chunk: int = 4096,
    device: str | torch.device | None = None,
) -> float:
    """Mean over generated samples of the min cosine distance to the training set.

    Low AMD means generations sit close to training samples (memorisation). Use the same
    feature extractor as for FID.
    """
    return float(
        nearest_cosine_distance(fake_feats, train_feats, chunk=chunk, device=device).mean()
    )
