"""Progress off a terminal: plain lines on stderr, so batch logs show a run is alive."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from memctl.cli.common import PROGRESS_ENV, ProgressLines, console, progress_bar
from tests.conftest import SMALL


def _lines(every_s: float, updates: list[tuple[int, int, str]]) -> list[str]:
    out: list[str] = []
    progress = ProgressLines("retrain", every_s=every_s, write=out.append)
    for update in updates:
        progress(*update)
    return out


def test_a_line_at_each_five_percent_of_short_work():
    out = _lines(3600, [(step, 100, f"loss {1 / step:.2f}") for step in range(1, 101)])
    assert len(out) == 21  # the first update, then 5%, 10%, ... 100%
    assert out[1].startswith("retrain: 5/100, loss 0.20, ETA ")
    assert out[-1] == "retrain: 100/100, loss 0.01"


def test_a_line_at_every_interval_however_slow():
    out = _lines(0, [(1, 1000, "")] * 3)
    assert out == ["retrain: 1/1000"] * 3


def test_counts_without_a_total():
    assert _lines(0, [(7, 0, "")]) == ["retrain: 7"]


def test_progress_bar_off_a_terminal_writes_lines(monkeypatch, capfd):
    monkeypatch.setenv(PROGRESS_ENV, "0")
    assert not console.is_terminal  # pytest captures stderr
    with progress_bar("caching") as update:
        update(3, 10)
        update(4, 10)
    assert capfd.readouterr().err.splitlines()[:2] == ["caching: 3/10", "caching: 4/10, ETA 0m00s"]


@pytest.mark.slow
def test_piped_search_logs_progress_lines(tmp_path, tiny_model_dir):
    env = {**os.environ, PROGRESS_ENV: "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "memctl", "search", "--executor", "local", "--trials", "1",
         "--workers", "1", *SMALL, "search.enqueue_baseline=false", f"model.path={tiny_model_dir}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^caching: \d+/\d+", proc.stderr, re.M), proc.stderr[-3000:]
    assert re.search(r"^trials: [01]/1, running \d+, failed 0", proc.stderr, re.M), \
        proc.stderr[-3000:]


@pytest.mark.slow
def test_piped_baselines_log_training_steps(tmp_path, tiny_model_dir):
    env = {**os.environ, PROGRESS_ENV: "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "memctl", "baselines", "--methods", "full", "--mitigations", "none",
         "--no-evaluate",
         *SMALL, f"model.path={tiny_model_dir}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^baselines: full: training$", proc.stderr, re.M), proc.stderr[-3000:]
    assert re.search(r"^baselines: full: [1-6]/6, loss \d", proc.stderr, re.M), \
        proc.stderr[-3000:]
