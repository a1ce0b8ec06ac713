"""memctl retrain / report (and status) against a study that does not exist."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from memctl.cli import main


@pytest.mark.parametrize("command", [["retrain", "--best"], ["retrain", "--trial", "0"],
                                     ["report"], ["status"]])
@pytest.mark.parametrize("run_dir_exists", [False, True])
def test_read_only_commands_create_no_study_store(tmp_path, monkeypatch, command,
                                                  run_dir_exists):
    monkeypatch.chdir(tmp_path)
    if run_dir_exists:
        (tmp_path / "memctl-runs").mkdir()
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 2, result.output
    db = tmp_path / "memctl-runs" / "studies.db"
    assert result.stderr.strip() == (f"memctl: error: no study 'memctl' in sqlite:///{db}; "
                                     f"run memctl search first")
    assert not db.exists()


def test_unreachable_storage_is_one_line_with_the_password_masked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        main, ["report", "--storage", "postgresql+psycopg2://u:hunter2@127.0.0.1:1/x"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "u:***@127.0.0.1:1/x" in lines[0]
    assert "hunter2" not in result.output
