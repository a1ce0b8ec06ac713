"""Both engines: what trains, what stays frozen, and that they agree."""

from __future__ import annotations

import json

import pytest
import torch

from memctl.config import load_config
from memctl.errors import UserError
from memctl.train import ds_config
from tests.train._tiny import MASK_UP, make_unet, run, train_config


def _assert_frozen_untouched(result: dict) -> None:
    before = dict(make_unet().named_parameters())
    trained = set(result["state"])
    n_frozen = 0
    for name, p in result["unet"].named_parameters():
        assert p.dtype == torch.float32, name
        if name not in trained:
            assert torch.equal(p, before[name]), f"frozen {name} changed"
            n_frozen += 1
    assert n_frozen > 0 and trained


def _assert_moved(result: dict) -> None:
    before = dict(make_unet().named_parameters())
    assert any(not torch.equal(v, before[k]) for k, v in result["state"].items())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_torch_engine_trains_only_the_mask(precision):
    result = run(bits=MASK_UP, precision=precision, steps=2)
    _assert_frozen_untouched(result)
    _assert_moved(result)


def test_deepspeed_matches_torch_in_fp32():
    kw = dict(bits=MASK_UP, steps=4, grad_accum=2, lr_schedule="cosine", warmup_steps=1,
              grad_clip=0.05)  # a clip that bites, so both clipping paths run
    ref = run(engine="torch", **kw)
    ds = run(engine="deepspeed", zero_stage=2, **kw)
    torch.testing.assert_close(torch.tensor(ds["losses"]), torch.tensor(ref["losses"]),
                               rtol=1e-5, atol=1e-6)
    for name, value in ref["state"].items():
        torch.testing.assert_close(ds["state"][name], value, rtol=1e-4, atol=1e-6)
    _assert_frozen_untouched(ds)


def test_deepspeed_bf16_restores_fp32_model():
    result = run(bits=MASK_UP, engine="deepspeed", precision="bf16", zero_stage=0, steps=1,
                 batch_size=1)
    _assert_frozen_untouched(result)  # frozen back in fp32 bit for bit, trained from masters
    _assert_moved(result)


def test_gradient_checkpointing_gives_the_same_losses():
    plain = run(bits=MASK_UP, steps=2)
    ckpt = run(bits=MASK_UP, steps=2, gradient_checkpointing=True)
    torch.testing.assert_close(torch.tensor(ckpt["losses"]), torch.tensor(plain["losses"]),
                               rtol=1e-5, atol=1e-6)


def test_deepspeed_json_merges_and_loop_keys_are_guarded(tmp_path):
    cfg = train_config(zero_stage=1, deepspeed_config="zero2")
    built = ds_config.build(cfg, world_size=2, device=torch.device("cpu"))
    assert built["zero_optimization"]["stage"] == 2  # the file wins for tuning keys
    assert built["train_batch_size"] == cfg.batch_size * 2
    assert built["optimizer"]["params"]["torch_adam"] is True
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"train_micro_batch_size_per_gpu": 99}))
    with pytest.raises(UserError, match="train_micro_batch_size_per_gpu"):
        ds_config.build(train_config(deepspeed_config=str(bad)), 1, torch.device("cpu"))
    with pytest.raises(UserError, match="not found"):
        ds_config.build(train_config(deepspeed_config="nope"), 1, torch.device("cpu"))


@pytest.mark.parametrize("override, field", [
    ("train.zero_stage=3", "train.zero_stage"),
    ("train.precision=fp16", "train.precision"),
    ("train.mitigation=dropout", "train.mitigation"),
    ("train.rwa_prob=1.5", "train.rwa_prob"),
    ("train.threshold_quantile=0", "train.threshold_quantile"),
    ("train.grad_accum=0", "train.grad_accum"),
    ("train.checkpoint_every=-1", "train.checkpoint_every"),
])
def test_config_rejects_bad_training_fields(override, field):
    with pytest.raises(UserError, match=field):
        load_config(None, [override])
