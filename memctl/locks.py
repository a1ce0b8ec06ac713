"""Build-once locks: one process builds a shared file or folder, the others wait, then reuse it.

Two searches started at once in a fresh run directory both find the embedded model, dataset
and cache missing; without a lock each would build them over the other's half-written files.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def lock_path(target: Path) -> Path:
    """The lock file beside what it guards: `<name>.lock`."""
    return target.with_name(target.name + ".lock")


@contextlib.contextmanager
def build_lock(target: Path) -> Iterator[None]:
    """Holds an exclusive lock on `<target>.lock` (flock: released by the kernel if the
    holder dies, so a killed build never blocks the next one). Callers re-check whether
    `target` exists once inside: the process they waited for may have built it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(target), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("%s: another process is building it; waiting for it to finish", target)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
