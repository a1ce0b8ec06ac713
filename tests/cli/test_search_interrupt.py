"""Ctrl-C on a local search: a clean stop, the running trial handed back, and a re-run that
resumes it and reaches the requested count."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from memctl.search.space import mask_from_params
from tests.conftest import SMALL

STEPS = ["train.steps=16", "train.checkpoint_every=2"]


def _search(cwd: Path, model: Path, executor: str) -> list[str]:
    return [sys.executable, "-m", "memctl", "search", "--executor", executor, "--trials", "3",
            "--workers", "1", "--json", *SMALL, *STEPS, f"model.path={model}"]


def _checkpointed(trial_dir: Path) -> bool:
    ckpts = trial_dir / "checkpoints"
    return ckpts.is_dir() and any(ckpts.iterdir())


def _interrupt_during_second_trial(proc: subprocess.Popen, trials: Path) -> None:
    """Ctrl-C from a terminal: SIGINT to the search's whole process group, once the first
    trial is complete and the second has saved a training checkpoint."""
    deadline = time.monotonic() + 600
    while not ((trials / "00000" / "scores.json").exists() and _checkpointed(trials / "00001")):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the second trial never started training"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)


def _end_group(proc: subprocess.Popen) -> None:
    """Kills what is left of a search's process group: local workers outlive a killed head."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _study(cwd: Path) -> optuna.Study:
    return optuna.load_study(study_name="memctl",
                             storage=f"sqlite:///{cwd / 'memctl-runs' / 'studies.db'}")


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "debug"])
def test_ctrl_c_hands_the_trial_back_and_a_rerun_completes(tmp_path, tiny_model_dir, executor):
    argv = _search(tmp_path, tiny_model_dir, executor)
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        _interrupt_during_second_trial(proc, tmp_path / "memctl-runs" / "trials" / "memctl")
        _, stderr = proc.communicate(timeout=300)
    finally:
        _end_group(proc)
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("memctl: search interrupted: 1 of 3")

    trials = _study(tmp_path).get_trials()
    states = [t.state.name for t in trials]
    assert states == ["COMPLETE", "FAIL", "WAITING"], states
    interrupted, retry = trials[1], trials[2]
    assert mask_from_params(retry.params, 16) == mask_from_params(interrupted.params, 16)
    assert interrupted.system_attrs["fail_reason"].startswith("interrupted")
    assert _checkpointed(Path(interrupted.user_attrs["out_dir"]))

    rerun = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = rerun.communicate(timeout=900)
    finally:
        _end_group(rerun)
    assert rerun.returncode == 0, stderr[-3000:]
    assert json.loads(stdout)["complete"] == 3
    trials = _study(tmp_path).get_trials()
    assert [t.state.name for t in trials].count("RUNNING") == 0
    resumed = trials[2]
    assert resumed.state.name == "COMPLETE" and resumed.user_attrs["resumed_from"] > 0
