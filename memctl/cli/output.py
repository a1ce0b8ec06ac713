"""Where command results go.

Libraries (DeepSpeed's logger among them) print to stdout while a command runs, so the
main group redirects stdout to stderr and commands write results through `emit`, which
targets the stream that was stdout when the command started (a terminal, a pipe, or a
test runner's capture).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TextIO

import click

_stream: list[TextIO] = []


@contextlib.contextmanager
def results_to(stream: TextIO) -> Iterator[None]:
    _stream.append(stream)
    try:
        yield
    finally:
        _stream.pop()


def emit(text: str) -> None:
    click.echo(text, file=_stream[-1] if _stream else None)
