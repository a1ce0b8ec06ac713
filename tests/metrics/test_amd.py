import numpy as np
import pytest
import torch

from memctl.metrics import amd, nearest_cosine_distance


def brute_force_amd(fake: np.ndarray, train: np.ndarray) -> float:
    mins = []
    for f in fake:
        dists = [1 - f @ t / (np.linalg.norm(f) * np.linalg.norm(t)) for t in train]
        mins.append(min(dists))
    return float(np.mean(mins))


@pytest.mark.parametrize("chunk", [3, 4096])
def test_matches_brute_force_with_uneven_chunks(chunk):
    rng = np.random.default_rng(0)
    fake, train = rng.normal(size=(11, 6)), rng.normal(size=(17, 6))
    assert amd(fake, train, chunk=chunk) == pytest.approx(brute_force_amd(fake, train), abs=1e-12)


def test_float32_torch_input_and_per_sample_values():
    rng = np.random.default_rng(1)
    fake, train = rng.normal(size=(9, 5)), rng.normal(size=(13, 5))
    per_sample = nearest_cosine_distance(torch.tensor(fake, dtype=torch.float32), train, chunk=4)
    assert per_sample.shape == (9,)
    assert per_sample.mean().item() == pytest.approx(brute_force_amd(fake, train), abs=1e-5)


def test_copies_of_training_samples_give_zero():
    train = np.random.default_rng(2).normal(size=(8, 4))
    assert amd(train[:3] * 2.5, train) == pytest.approx(0.0, abs=1e-12)


def test_rejects_mismatched_dims():
    with pytest.raises(ValueError):
        amd(np.zeros((2, 3)), np.zeros((2, 4)))
