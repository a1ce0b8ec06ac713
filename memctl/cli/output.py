"""Where command results go.

Libraries (DeepSpeed's logger among them) print to stdout while a command runs, so the
main group redirects stdout to stderr and commands write results through `emit`, which
targets the stream that was stdout when the command started (a terminal, a pipe, or a
test runner's capture).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any, TextIO

import click
from rich.console import Console

_stream: list[TextIO] = []


@contextlib.contextmanager
def results_to(stream: TextIO) -> Iterator[None]:
    _stream.append(stream)
    try:
        yield
    finally:
        _stream.pop()


def _results_stream() -> TextIO:
    return _stream[-1] if _stream else sys.stdout


def emit(text: str) -> None:
    click.echo(text, file=_results_stream())


UNWRAPPED_WIDTH = 100_000
"""Console width off a terminal: wide enough that rich never breaks a line."""


def make_console(**kwargs: Any) -> Console:
    """A rich Console that, off a terminal, never wraps: logs and pipes are read by grep and
    copy-paste, where a path broken at column 80 is useless. On a terminal, its width."""
    console = Console(**kwargs)
    if not console.is_terminal:
        console.width = UNWRAPPED_WIDTH
    return console


def results_console() -> Console:
    """A rich console on the results stream, for tables and styled result lines (rich's
    own console, `common.console`, is for logs and progress on stderr)."""
    return make_console(file=_results_stream(), soft_wrap=True)
