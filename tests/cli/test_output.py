"""Off a terminal (batch logs, pipes) rich never wraps a line: paths stay whole for grep."""

from __future__ import annotations

import os
import subprocess
import sys


def _piped(args: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, COLUMNS="80"))


def test_piped_message_is_one_line(tmp_path):
    path = tmp_path / ("deep" * 30) / "memctl.yaml"
    path.parent.mkdir()
    proc = _piped(["-m", "memctl", "init", str(path)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"then `memctl cache build -c {path}`" in proc.stderr.splitlines()[0]


def test_piped_log_and_result_lines_are_whole(tmp_path):
    long = "/data/" + "x" * 200 + "/image.png"
    code = ("import logging; from memctl.cli.common import setup_logging; "
            "from memctl.cli.output import results_console; setup_logging(); "
            f"logging.info('log {long}'); results_console().print('result {long}')")
    proc = _piped(["-c", code], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert any(line.endswith(f"INFO log {long}") for line in proc.stderr.splitlines())
    assert proc.stdout == f"result {long}\n"
