"""Checkpoints: a killed run resumes and ends bit-for-bit where an uninterrupted one ends."""

from __future__ import annotations

import json

import pytest
import torch

from memctl.errors import UserError
from tests.train._tiny import MASK_UP, STEPS, assert_same, run


@pytest.mark.parametrize("engine", [
    dict(engine="torch", mitigation="threshold", threshold_calibration_steps=2),
    dict(engine="deepspeed", zero_stage=1),
])
def test_interrupted_run_resumes_to_identical_weights(tmp_path, engine):
    reference = run(str(tmp_path / "ref"), bits=MASK_UP, **STEPS, **engine)
    with pytest.raises(KeyboardInterrupt):
        run(str(tmp_path / "cut"), bits=MASK_UP, stop_at=3, **STEPS, **engine)
    names = [p.name for p in (tmp_path / "cut" / "checkpoints").iterdir()]
    assert names == ["step-00000002"]  # the kill came before step 4's checkpoint
    resumed = run(str(tmp_path / "cut"), bits=MASK_UP, **STEPS, **engine)
    assert resumed["resumed_from"] == 2
    assert_same(reference, resumed)
    lines = [json.loads(x) for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == list(range(5))  # steps 2 and 3 logged once, not twice
    kept = sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir())
    assert kept == ["step-00000004", "step-00000005"]  # keep_checkpoints=2


def test_checkpoint_holds_trained_tensors_only(tmp_path):
    result = run(str(tmp_path), bits=MASK_UP, steps=2, checkpoint_every=2)
    state = torch.load(tmp_path / "checkpoints" / "step-00000002" / "engine.pt",
                       weights_only=True)
    assert state["trainable"].keys() == result["state"].keys()
    assert {"optimizer", "scheduler"} <= state.keys()
    loop = torch.load(tmp_path / "checkpoints" / "step-00000002" / "loop-rank0.pt",
                      weights_only=True)  # RNG states are stored as plain tensors
    assert loop["step"] == 2 and {"torch", "numpy", "python"} <= loop["rng"].keys()


def test_deepspeed_checkpoint_leaves_frozen_weights_out(tmp_path):
    result = run(str(tmp_path), bits=MASK_UP, steps=1, checkpoint_every=1, engine="deepspeed")
    states = tmp_path / "checkpoints" / "step-00000001" / "deepspeed"
    module = torch.load(states / "mp_rank_00_model_states.pt", weights_only=False)["module"]
    assert set(module) == set(result["state"])


def test_damaged_newest_checkpoint_falls_back_and_finished_run_is_kept(tmp_path):
    full = run(str(tmp_path / "ref"), bits=MASK_UP, **STEPS)
    with pytest.raises(KeyboardInterrupt):
        run(str(tmp_path / "cut"), bits=MASK_UP, stop_at=4, **STEPS)
    ckpts = tmp_path / "cut" / "checkpoints"
    (ckpts / "step-00000004" / "engine.pt").write_bytes(b"torn")  # e.g. a disk error
    (ckpts / ".tmp-step-00000006").mkdir()  # a kill mid-save leaves this behind
    resumed = run(str(tmp_path / "cut"), bits=MASK_UP, **STEPS)
    assert resumed["resumed_from"] == 2
    assert_same(full, resumed)
    assert not (ckpts / ".tmp-step-00000006").exists()
    again = run(str(tmp_path / "cut"), bits=MASK_UP, **STEPS)  # finished: nothing reruns
    assert again["resumed_from"] == 5
    assert_same(full, again)


def test_checkpoints_of_another_setup_are_refused(tmp_path):
    run(str(tmp_path), bits=MASK_UP, steps=2, checkpoint_every=1)
    with pytest.raises(UserError, match="different training setup"):
        run(str(tmp_path), bits=MASK_UP, steps=2, checkpoint_every=1, lr=5e-4)
