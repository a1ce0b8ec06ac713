"""The search's fine_tune with each mitigation, on the embedded model and its real cache."""

from __future__ import annotations

import dataclasses
import json

import pytest

from memctl.data.cache import CacheReader
from memctl.runs.fine_tune import fine_tune


@pytest.mark.parametrize("mitigation", ["rwa", "threshold"])
def test_fine_tune_with_mitigation(prepared, tmp_path, mitigation):
    cfg, ws = prepared
    train = dataclasses.replace(cfg.train, steps=2, batch_size=2, mitigation=mitigation,
                                rwa_prob=1.0, threshold_calibration_steps=1,
                                threshold_quantile=0.5, log_every=1)
    cfg = dataclasses.replace(cfg, train=train)
    reader = CacheReader(ws.cache_path)
    tuned = fine_tune(cfg, cfg.model.path, [1] * 16, reader, reader.usable("train")[:8],
                      tmp_path)
    assert len(tuned.result.losses) == 2
    log = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    if mitigation == "rwa":
        assert [x["augmented"] for x in log] == [2, 2]  # p = 1: every caption re-encoded
    else:
        assert log[0]["dropped"] == 0 and "threshold" in log[-1]  # calibrated after step 1


def test_a_method_trains_at_its_own_learning_rate(prepared, tmp_path):
    cfg, ws = prepared
    train = dataclasses.replace(cfg.train, steps=1, batch_size=2, log_every=1, lr=1e-3,
                                method_lr={"svdiff": 2e-4})
    reader = CacheReader(ws.cache_path)
    for method, lr in (("svdiff", 2e-4), ("difffit", 1e-3)):
        run = dataclasses.replace(cfg, train=train,
                                  peft=dataclasses.replace(cfg.peft, method=method))
        out = tmp_path / method
        fine_tune(run, cfg.model.path, [1] * 16, reader, reader.usable("train")[:4], out)
        log = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        assert log[0]["lr"] == pytest.approx(lr), method
