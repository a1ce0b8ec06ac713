"""memctl search / status: flags, storage checks, what goes to stdout."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest
from click.testing import CliRunner

from memctl.cli import main


def _one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--trials", "0"], "search.trials"),
        (["--trials", "-3"], "search.trials"),
        (["--workers", "0"], "search.workers"),
        (["search.trials=0"], "search.trials"),
    ],
)
def test_bad_counts_are_one_line_naming_the_field(tmp_path, monkeypatch, args, field):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["search", *args])
    assert result.exit_code == 2, result.output
    line = _one_error_line(result)
    assert f"{field}: must be > 0" in line
    assert not (tmp_path / "memctl-runs").exists()  # refused before building anything


def test_unreachable_storage_fails_before_the_cache_is_built(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        main, ["search", "--storage", "postgresql+psycopg2://u:hunter2@127.0.0.1:1/x"])
    assert result.exit_code == 2, result.output
    line = _one_error_line(result)
    assert "search.storage postgresql+psycopg2://u:***@127.0.0.1:1/x: cannot open" in line
    assert "hunter2" not in result.output
    assert not (tmp_path / "memctl-runs" / "cache").exists()


def _small_study(run_dir) -> None:
    """A study as a search leaves it: two complete trials and one failed."""
    from memctl.config import load_config
    from memctl.search.study import create_study, default_storage_url

    run_dir.mkdir()
    cfg = load_config(None, [f"run_dir={run_dir}"])
    study = create_study(cfg, default_storage_url(cfg))
    study.set_user_attr("config", cfg.to_dict())
    for values in ([0.2, 30.0], [0.4, 20.0], None):
        trial = study.ask()
        trial.set_user_attr("mask", "1" * 16)
        if values is None:
            trial.set_user_attr("error", "RuntimeError: [nan] loss")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, values)


def test_status_goes_to_stdout_when_redirected(tmp_path):
    _small_study(tmp_path / "memctl-runs")
    out = tmp_path / "status.txt"
    with out.open("w") as fh:
        proc = subprocess.run([sys.executable, "-m", "memctl", "status"], cwd=tmp_path,
                              stdout=fh, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "study memctl" in text and "complete 2" in text and "Pareto front" in text
    assert "failed: trial 2 mask 1111111111111111: RuntimeError: [nan] loss" in text
    assert "Pareto front" not in proc.stderr and "study memctl" not in proc.stderr
