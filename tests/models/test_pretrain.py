"""The script that reproduces the embedded weights runs end to end (a few steps)."""

import hashlib
import json

import torch
from safetensors import safe_open

from memctl.models import pretrain, tiny


def test_a_few_steps_write_loadable_weights_with_their_checksum(tmp_path):
    meta = pretrain.pretrain(tmp_path, seed=3, n_scenes=16, vae_steps=2, decoder_steps=2,
                             unet_steps=2, batch=4)
    path = tmp_path / pretrain.WEIGHTS_FILE
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (tmp_path / pretrain.CHECKSUM_FILE).read_text().split()[0] == digest == meta["sha256"]
    with safe_open(str(path), "pt") as fh:
        stored = json.loads(fh.metadata()["memctl"])
        keys = set(fh.keys())
    assert stored["seed"] == 3 and stored["scaling_factor"] > 0
    # Every parameter of the three trained modules is stored, under the module's prefix.
    pipe = tiny.build_tiny_pipeline(pretrained=False)
    expected = {f"{name}.{k}" for name in ("vae", "text_encoder", "unet")
                for k in getattr(pipe, name).state_dict()}
    assert keys == expected


def test_scenes_are_general_domain_and_seeded():
    from memctl.models.scenes import scenes

    a, captions = scenes(8, 32, seed=1)
    b, _ = scenes(8, 32, seed=1)
    assert a.shape == (8, 32, 32, 3) and a.dtype.name == "uint8"
    assert (a == b).all()
    assert all(c.startswith(("a photo of", "a black and white photo of")) for c in captions)
    assert torch.from_numpy(a).float().std() > 10  # not blank
