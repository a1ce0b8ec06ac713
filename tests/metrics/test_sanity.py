"""The embedded testbed can show memorisation: its VAE reconstructs the fine-tuning data and
no two distinct training images are linked by the extraction attack."""

import csv

import pytest
import torch

from memctl.config import load_config
from memctl.metrics.sanity import min_distinct_tiled_l2, vae_reconstruction_l2

MAX_RECON_L2 = 0.03


def test_min_distinct_ignores_copies_of_one_image():
    a, b = torch.zeros(1, 1, 8, 8), torch.full((1, 1, 8, 8), 0.5)
    images = torch.cat([a, a, b])
    assert min_distinct_tiled_l2(images, ["x", "x", "y"], grid=2) == pytest.approx(0.5)
    assert min_distinct_tiled_l2(images, ["x", "z", "y"], grid=2) == 0.0


@pytest.fixture(scope="module")
def builtin_images(tmp_path_factory):
    """The built-in dataset at its default size, loaded at the embedded model's resolution."""
    from memctl.data.images import load_image
    from memctl.data.synth import write_synth_dataset

    cfg = load_config(None, [])
    out = tmp_path_factory.mktemp("synth")
    manifest = write_synth_dataset(out, n=cfg.data.synth_n)
    with open(manifest) as fh:
        paths = [str(out / r["path"]) for r in csv.DictReader(fh)]
    images = torch.stack([load_image(p, cfg.model.resolution) for p in paths])
    return (images + 1) / 2, paths, cfg


def test_embedded_vae_reconstructs_the_fine_tuning_data(builtin_images, tiny_model_dir):
    from memctl.models.load import load_components

    images, _, _ = builtin_images
    recon = vae_reconstruction_l2(load_components(tiny_model_dir, text=False).vae, images)
    assert float(recon.mean()) <= MAX_RECON_L2
    assert float(recon.mean()) < 0.5 * load_config(None, []).eval.extraction_threshold


def test_no_two_distinct_builtin_images_are_linked_by_the_attack(builtin_images):
    images, paths, cfg = builtin_images
    nearest = min_distinct_tiled_l2(images, paths, cfg.eval.tile_grid)
    assert nearest > cfg.eval.extraction_threshold
    assert nearest > cfg.eval.edge_threshold
