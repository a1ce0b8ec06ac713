"""A stop request (SLURM's SIGTERM) ends training at a step boundary with that step saved."""

from __future__ import annotations

import os
import signal

import pytest

from memctl.train.stop import StopOnSignal, TrainingStopped
from tests.train._tiny import MASK_UP, STEPS, assert_same, run


def test_signal_sets_the_request_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with StopOnSignal() as stop:
        assert not stop()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop() and stop.received == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_stop_checkpoints_the_current_step_and_resumes_to_identical_weights(tmp_path):
    reference = run(str(tmp_path / "ref"), bits=MASK_UP, **STEPS)
    with StopOnSignal() as stop, pytest.raises(TrainingStopped) as stopped:
        # The signal lands after step 2, so during step 3: that step finishes and is saved.
        run(str(tmp_path / "cut"), bits=MASK_UP, should_stop=stop, sigterm_at=2, **STEPS)
    assert stopped.value.step == 3 and stopped.value.checkpointed
    ckpts = sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir())
    assert ckpts == ["step-00000002", "step-00000003"]  # 3 is off the every-2 schedule
    resumed = run(str(tmp_path / "cut"), bits=MASK_UP, **STEPS)
    assert resumed["resumed_from"] == 3
    assert_same(reference, resumed)


def test_no_request_changes_nothing(tmp_path):
    reference = run(str(tmp_path / "ref"), bits=MASK_UP, **STEPS)
    asked = run(str(tmp_path / "asked"), bits=MASK_UP, should_stop=lambda: False, **STEPS)
    assert_same(reference, asked)
