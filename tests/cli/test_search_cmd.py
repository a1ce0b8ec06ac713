"""memctl search / status: flags, storage checks, what goes to stdout."""

from __future__ import annotations

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
