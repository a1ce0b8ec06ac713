import stat

import numpy as np
import pytest
import torch

from memctl.metrics import gaussian_stats
from memctl.metrics.features import get_extractor
from memctl.metrics.reference_stats import reference_stats, stats_path


def _batches(calls: list[int]):
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(10, 1, 16, 16, generator=gen)

    def batches():
        calls.append(1)
        return (images[i : i + 4] for i in range(0, 10, 4))

    return batches, images


def test_computes_once_then_loads(tmp_path):
    calls: list[int] = []
    batches, images = _batches(calls)
    tiny = get_extractor("tiny")
    cache = tmp_path / "cache.h5"
    first = reference_stats(cache, "val", tiny, "fp1", batches)
    second = reference_stats(cache, "val", tiny, "fp1", batches)
    assert calls == [1]
    path = stats_path(cache, "val", "tiny")
    assert path == tmp_path / "cache.val.tiny.npz"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    mu, sigma = gaussian_stats(tiny(images))
    np.testing.assert_allclose(second.mu, mu)
    np.testing.assert_allclose(second.sigma, sigma)
    assert second.n == 10 and second.features.shape == (10, tiny.dim)
    np.testing.assert_array_equal(first.features, second.features)
    assert list(tmp_path.iterdir()) == [path]  # no temporary files left


def test_changed_fingerprint_or_missing_features_recompute(tmp_path):
    calls: list[int] = []
    batches, _ = _batches(calls)
    tiny = get_extractor("tiny")
    stats = reference_stats(tmp_path / "c.h5", "val", tiny, "a", batches, keep_features=False)
    assert stats.features is None
    reference_stats(tmp_path / "c.h5", "val", tiny, "a", batches, keep_features=False)
    assert len(calls) == 1
    reference_stats(tmp_path / "c.h5", "val", tiny, "b", batches, keep_features=False)
    assert len(calls) == 2
    reference_stats(tmp_path / "c.h5", "val", tiny, "b", batches)  # now features are needed
    assert len(calls) == 3


def test_no_images_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no images"):
        reference_stats(tmp_path / "c.h5", "val", get_extractor("tiny"), "x", lambda: [])
