"""Frechet distance between Gaussians fitted to feature sets (FID when features are Inception's)."""

from __future__ import annotations

import numpy as np

from memctl.metrics._tensors import ArrayLike, as_numpy64, as_tensor

# Rows per chunk when fitting stats: bounds the float64 copy for 400k x 1024 feature sets.
_STATS_CHUNK = 16384


def gaussian_stats(feats: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) in float64, computed in two chunked passes.

    Two passes (mean first, then centred outer products) avoid the cancellation of the
    one-pass sum-of-squares formula and never hold a float64 copy of all features.
    """
    t = as_tensor(feats)
    if t.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {tuple(t.shape)}")
    n, d = t.shape
    if n < 2:
        raise ValueError(f"need at least 2 feature rows to estimate a covariance, got {n}")
    total = np.zeros(d)
    for start in range(0, n, _STATS_CHUNK):
        total += as_numpy64(t[start : start + _STATS_CHUNK]).sum(axis=0)
    mu = total / n
    scatter = np.zeros((d, d))
    for start in range(0, n, _STATS_CHUNK):
        centred = as_numpy64(t[start : start + _STATS_CHUNK]) - mu
        scatter += centred.T @ centred
    return mu, scatter / (n - 1)


def _sqrtm_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_from_stats(
    mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike
) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).

    The trace term is computed as tr((S1^(1/2) S2 S1^(1/2))^(1/2)): that matrix is symmetric
    PSD (similar to S1 S2), so symmetric eigendecompositions give a real answer and there are
    no spurious imaginary parts to discard, unlike scipy.linalg.sqrtm on the product.
    """
    mu1, mu2 = as_numpy64(mu1), as_numpy64(mu2)
    s1, s2 = as_numpy64(sigma1), as_numpy64(sigma2)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != mu1.shape * 2:
        raise ValueError(
            f"mismatched stats: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}"
        )
    root1 = _sqrtm_psd(s1)
    inner = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0.0, None)).sum()
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    # Identical inputs give -1e-12-scale round-off; a distance is never negative.
    return max(value, 0.0)


def frechet_distance(feats_a: ArrayLike, feats_b: ArrayLike) -> float:
    """Frechet distance between Gaussians fitted to two (N, D) feature sets.

    Strongly biased upwards for small N relative to D (e.g. 100 samples, 1024-d): report N.
    """
    return frechet_from_stats(*gaussian_stats(feats_a), *gaussian_stats(feats_b))


fid = frechet_distance
