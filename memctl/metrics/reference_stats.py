"""Real-image feature statistics, computed once per (data, split, extractor) and cached.

FID needs the real split's mean and covariance and AMD needs the training features; both are
expensive at 400k images, so they are written next to the data cache as
``<stem>.<split>.<extractor>.npz`` (keys mu, sigma, n, plus features when kept). The file
records the extractor name and a caller-supplied data fingerprint; a mismatch means the data
or extractor changed, and the statistics are recomputed rather than silently reused.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from memctl.metrics.features.base import FeatureExtractor
from memctl.metrics.frechet import gaussian_stats

ImageBatches = Callable[[], Iterable[torch.Tensor]]


@dataclass(frozen=True)
class ReferenceStats:
    mu: np.ndarray  # (D,) float64
    sigma: np.ndarray  # (D, D) float64
    n: int
    extractor: str
    fingerprint: str
    features: np.ndarray | None  # (n, D) float32, when kept (AMD needs them)


def stats_path(next_to: str | Path, split: str, extractor: str) -> Path:
    """Cache file beside ``next_to`` (e.g. the HDF5 data cache)."""
    base = Path(next_to)
    return base.with_name(f"{base.stem}.{split}.{extractor}.npz")


def load_reference_stats(
    path: str | Path, extractor: str, fingerprint: str, *, need_features: bool = False
) -> ReferenceStats | None:
    """The cached stats, or None when absent, stale or lacking requested features."""
    path = Path(path)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        if "fingerprint" not in z or str(z["fingerprint"]) != fingerprint:
            return None
        if str(z["extractor"]) != extractor or (need_features and "features" not in z):
            return None
        features = z.get("features")
        return ReferenceStats(z["mu"], z["sigma"], int(z["n"]), extractor, fingerprint, features)


def _write_private(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # Created 0600 from the start (features of sensitive images), then renamed into place
    # so concurrent readers never see a partial file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def compute_reference_stats(
    batches: Iterable[torch.Tensor], extractor: FeatureExtractor, fingerprint: str
) -> ReferenceStats:
    feats = [extractor(b).numpy() for b in batches]
    if not feats:
        raise ValueError("no images to compute reference statistics from")
    features = np.concatenate(feats).astype(np.float32, copy=False)
    mu, sigma = gaussian_stats(features)
    return ReferenceStats(mu, sigma, len(features), extractor.name, fingerprint, features)


def reference_stats(
    next_to: str | Path,
    split: str,
    extractor: FeatureExtractor,
    fingerprint: str,
    batches: ImageBatches,
    *,
    keep_features: bool = True,
) -> ReferenceStats:
    """Load the split's stats for this extractor and fingerprint, or compute and store them.

    ``batches`` is called only on a cache miss and yields image batches (B, C, H, W) in
    [0, 1]. ``fingerprint`` should change whenever the split's images change (e.g. a hash
    of the cache file's manifest). With ``keep_features`` the per-image features are stored
    too (float32; 1.6 GB for 400k x 1024), which AMD needs.
    """
    path = stats_path(next_to, split, extractor.name)
    cached = load_reference_stats(path, extractor.name, fingerprint, need_features=keep_features)
    if cached is not None:
        return cached
    stats = compute_reference_stats(batches(), extractor, fingerprint)
    arrays = {
        "mu": stats.mu,
        "sigma": stats.sigma,
        "n": np.asarray(stats.n),
        "extractor": np.asarray(stats.extractor),
        "fingerprint": np.asarray(fingerprint),
    }
    if keep_features:
        arrays["features"] = stats.features
    else:
        stats = ReferenceStats(stats.mu, stats.sigma, stats.n, stats.extractor, fingerprint, None)
    _write_private(path, arrays)
    return stats
