import pytest
import torch

from memctl.errors import UserError
from memctl.metrics.features import FeatureExtractor, available_extractors, get_extractor, register


def test_tiny_is_seeded_and_batch_independent():
    images = torch.rand(5, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    a = get_extractor("tiny")
    b = get_extractor("tiny", batch_size=2)
    fa, fb = a(images), b(images)
    assert isinstance(a, FeatureExtractor) and a.name == "tiny"
    assert fa.shape == (5, a.dim) and fa.dtype == torch.float32
    torch.testing.assert_close(fa, fb)


def test_tiny_weights_are_fixed():
    # Same seed -> same weights on every machine; a changed value would silently change
    # every stored tiny-extractor statistic.
    weights = get_extractor("tiny").weights
    assert [tuple(w.shape) for w in weights] == [(16, 3, 3, 3), (32, 16, 3, 3), (32, 32, 3, 3)]
    assert weights[0].flatten()[:3].tolist() == pytest.approx(TINY_FIRST_WEIGHTS, abs=1e-6)


TINY_FIRST_WEIGHTS = [0.1295764297246933, -0.32233989238739014, -0.25857335329055786]


def test_tiny_accepts_grey_any_size_and_uint8():
    grey = torch.rand(3, 1, 24, 30)
    out = get_extractor("tiny")(grey)
    assert out.shape == (3, 64)
    as_rgb = get_extractor("tiny")(grey.expand(-1, 3, -1, -1))
    torch.testing.assert_close(out, as_rgb)
    assert get_extractor("tiny")(torch.zeros(2, 3, 8, 8, dtype=torch.uint8)).shape == (2, 64)


def test_tiny_separates_different_images():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 64, 64, generator=gen)
    feats = get_extractor("tiny")(x)
    assert not torch.allclose(feats[0], feats[1])


def test_rejects_bad_image_shapes():
    with pytest.raises(ValueError, match="tiny"):
        get_extractor("tiny")(torch.rand(2, 4, 8, 8))


def test_unknown_name_lists_valid_ones():
    with pytest.raises(UserError, match="valid: clip, inception, tiny, xrv-densenet121"):
        get_extractor("resnet")


@pytest.mark.parametrize("name", ["xrv-densenet121", "inception"])
def test_missing_weight_file_names_the_path(name, tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(UserError, match=f"{missing}.*wget https://"):
        get_extractor(name, weights=str(missing))


def test_clip_needs_a_local_directory(tmp_path):
    with pytest.raises(UserError, match="needs weights"):
        get_extractor("clip")
    with pytest.raises(UserError, match=str(tmp_path)):
        get_extractor("clip", weights=str(tmp_path))


def test_register_rejects_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register("tiny", lambda weights, **kw: None)
    assert "tiny" in available_extractors()
