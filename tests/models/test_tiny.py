"""The embedded model: shipped pretrained weights, checked and written as a diffusers folder."""

import hashlib
import shutil

import pytest
import torch

from memctl.models import tiny


def test_shipped_weights_match_their_checksum():
    data = (tiny.WEIGHTS_DIR / "tiny.safetensors").read_bytes()
    expected = (tiny.WEIGHTS_DIR / "tiny.sha256").read_text().split()[0]
    assert hashlib.sha256(data).hexdigest() == expected
    assert len(data) < 10 * 2**20  # the wheel stays small


def test_a_corrupted_weights_file_is_refused(tmp_path, monkeypatch):
    shutil.copytree(tiny.WEIGHTS_DIR, tmp_path / "weights")
    path = tmp_path / "weights" / "tiny.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    monkeypatch.setattr(tiny, "WEIGHTS_DIR", tmp_path / "weights")
    with pytest.raises(tiny.WeightsError, match="checksum mismatch"):
        tiny.build_tiny_pipeline()


def test_pretrained_weights_are_loaded_not_the_random_init():
    pretrained = tiny.build_tiny_pipeline()
    random_init = tiny.build_tiny_pipeline(pretrained=False)
    shipped = tiny.shipped_weights()
    for name in ("unet", "vae", "text_encoder"):
        got = getattr(pretrained, name).state_dict()
        for key, value in got.items():
            assert torch.equal(value, shipped[f"{name}.{key}"].float()), key
        init = getattr(random_init, name).state_dict()
        assert any(not torch.equal(got[k], init[k]) for k in got), name
    assert pretrained.vae.config.scaling_factor != random_init.vae.config.scaling_factor


def test_written_model_loads_in_a_stock_pipeline(tiny_model_dir):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_model_dir)
    shipped = tiny.shipped_weights()
    key = next(k for k in shipped if k.startswith("unet."))
    assert torch.equal(pipe.unet.state_dict()[key[5:]], shipped[key].float())


def test_tokenizer_knows_every_word_of_both_domains_and_fits_the_longest_caption():
    from memctl.data.synth import synth_cases
    from memctl.models.scenes import scenes

    tok = tiny.build_tokenizer()
    captions = [c.caption for c in synth_cases(400, seed=0)] + scenes(200, 32, seed=0)[1]
    for caption in captions:
        ids = tok(caption).input_ids
        assert tok.unk_token_id not in ids, caption
        assert len(ids) <= tiny.MAX_TOKENS, caption
