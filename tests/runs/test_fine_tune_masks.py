"""One trial's pieces on the tiny model: mask semantics through the real training loop."""

import torch

from memctl import peft
from memctl.runs.fine_tune import fine_tune


def test_zero_bits_leave_their_blocks_unchanged_and_one_bits_train(prepared, tmp_path):
    from memctl.models.load import load_components

    cfg, ws = prepared
    reader = ws.reader()
    before = {k: v.clone() for k, v in load_components(ws.model_dir, text=False).unet
              .state_dict().items()}
    n = peft.num_bits(load_components(ws.model_dir, text=False).unet, "blocks16")
    bits = [1 if k in (0, 6, 15) else 0 for k in range(n)]
    tuned = fine_tune(cfg, str(ws.model_dir), bits, reader, reader.usable("train")[:16], tmp_path)
    after = tuned.comps.unet.state_dict()
    names = peft.block_names(tuned.comps.unet, "blocks16")
    for k, block in enumerate(names):
        keys = [key for key in before if key.startswith(block + ".")]
        assert keys, block
        changed = [key for key in keys if not torch.equal(before[key], after[key])]
        if bits[k]:
            assert changed, f"bit {k} ({block}) is on but nothing in it moved"
        else:
            assert not changed, f"bit {k} ({block}) is off but {changed[:3]} moved"
    inside = tuple(name + "." for name in names)
    outside = [key for key in before if not key.startswith(inside)]
    assert all(torch.equal(before[key], after[key]) for key in outside)
    assert (tmp_path / "metrics.jsonl").exists()
