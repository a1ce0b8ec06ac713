import numpy as np
import pytest
import scipy.linalg
import torch

from memctl.metrics import fid, frechet_distance, frechet_from_stats, gaussian_stats
from memctl.metrics import frechet as frechet_module


def test_diagonal_gaussians_match_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    v1, v2 = rng.uniform(0.1, 3, size=5), rng.uniform(0.1, 3, size=5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    got = frechet_from_stats(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-10)


def test_full_covariances_match_scipy_sqrtm():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_from_stats(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_singular_covariance_stays_real_and_finite():
    # Fewer samples than dimensions: rank-deficient covariances, where sqrtm goes complex.
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(5, 20)), rng.normal(size=(5, 20))
    value = frechet_distance(x, y)
    assert np.isfinite(value) and value > 0


def test_stats_match_numpy_in_small_chunks(monkeypatch):
    monkeypatch.setattr(frechet_module, "_STATS_CHUNK", 7)
    x = np.random.default_rng(3).normal(size=(50, 4)).astype(np.float32)
    mu, sigma = gaussian_stats(x)
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(0), atol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False), atol=1e-12)


def test_sampled_distance_approaches_population_value():
    rng = np.random.default_rng(4)
    x = rng.normal(0.0, 1.0, size=(20000, 3))
    y = rng.normal(1.0, 2.0, size=(20000, 3))
    expected = 3 * 1.0 + 3 * (1 - 2) ** 2
    assert frechet_distance(x, y) == pytest.approx(expected, rel=0.05)


def test_torch_and_numpy_inputs_agree_and_identical_sets_give_zero():
    x = torch.randn(40, 8, generator=torch.Generator().manual_seed(5))
    y = x + 0.5
    assert frechet_distance(x, y) == pytest.approx(frechet_distance(x.numpy(), y.numpy()))
    assert fid(x, x) == pytest.approx(0.0, abs=1e-9)
    assert fid is frechet_distance


def test_rejects_too_few_rows_and_mismatched_dims():
    with pytest.raises(ValueError, match="at least 2"):
        gaussian_stats(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="mismatched"):
        frechet_from_stats(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
