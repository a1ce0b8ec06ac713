import numpy as np
import pytest
import torch

from memctl.metrics import normalised_l2, tiled_l2


def explicit_tiled_l2(a: np.ndarray, b: np.ndarray, grid: int) -> np.ndarray:
    h, w = a.shape[-2:]
    rows = [round(i * h / grid) for i in range(grid + 1)]
    cols = [round(i * w / grid) for i in range(grid + 1)]
    out = np.zeros((len(a), len(b)))
    for i in range(len(a)):
        for j in range(len(b)):
            worst = 0.0
            for r in range(grid):
                for c in range(grid):
                    ta = a[i, :, rows[r] : rows[r + 1], cols[c] : cols[c + 1]]
                    tb = b[j, :, rows[r] : rows[r + 1], cols[c] : cols[c + 1]]
                    worst = max(worst, np.sqrt(np.mean((ta - tb) ** 2)))
            out[i, j] = worst
    return out


@pytest.mark.parametrize(("shape", "grid"), [((3, 16, 16), 4), ((1, 18, 17), 4), ((3, 8, 8), 1)])
def test_matches_explicit_tile_loops(shape, grid):
    rng = np.random.default_rng(0)
    a, b = rng.uniform(size=(5, *shape)), rng.uniform(size=(4, *shape))
    got = tiled_l2(torch.tensor(a), torch.tensor(b), grid=grid)
    assert got.shape == (5, 4)
    np.testing.assert_allclose(got.numpy(), explicit_tiled_l2(a, b, grid), atol=1e-10)


def test_float32_keeps_small_distances_accurate():
    # Near-duplicates are what the attack looks for: cancellation must not swamp them.
    base = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    shifted = (base + 1e-3).float()
    got = tiled_l2(base.float(), shifted)
    np.testing.assert_allclose(got.diagonal().numpy(), 1e-3, rtol=0.05)


def test_one_changed_tile_dominates():
    a = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    b = a.clone()
    b[..., :2, :2] = 1.0  # one tile of the 4x4 grid fully changed
    assert tiled_l2(a, b).item() == pytest.approx(1.0)
    assert normalised_l2(a, b).item() == pytest.approx(np.sqrt(4 / 64))


def test_uint8_images_are_scaled_to_unit_range():
    a = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    b = torch.full((1, 1, 4, 4), 255, dtype=torch.uint8)
    assert tiled_l2(a, b, grid=2).item() == pytest.approx(1.0)


def test_rejects_mismatched_shapes_and_bad_grid():
    with pytest.raises(ValueError):
        tiled_l2(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ValueError, match="grid"):
        tiled_l2(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2), grid=4)
