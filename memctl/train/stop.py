"""Stopping a run at a step boundary when its job is being taken away.

SLURM sends SIGTERM to the tasks of a job it requeues, preempts or cancels, and SIGKILL
KillWait seconds later (30 s by default). A run that stops at its next step and checkpoints
loses nothing; one that trains on until the kill loses every step since its last periodic
checkpoint, and a short search trial may even finish under the job's old incarnation while
SLURM already holds the new one back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import FrameType

log = logging.getLogger(__name__)

EXIT_CODE = 128 + signal.SIGTERM
"""What a process stopped this way exits with: the shell's code for death by SIGTERM."""


class TrainingStopped(BaseException):
    """Raised by train() after the step during which a stop was requested, once that step is
    checkpointed. A BaseException on purpose: handlers that record failures (Optuna's among
    them) let it pass, since the run is not failed but waits to be resumed."""

    def __init__(self, step: int, checkpointed: bool) -> None:
        super().__init__(f"training stopped after step {step}"
                         + ("" if checkpointed else " (no checkpoint kept)"))
        self.step, self.checkpointed = step, checkpointed


class StopOnSignal:
    """A stop request set by SIGTERM; call the instance to ask whether one arrived.

    Use as a context manager in the main thread; the previous handler comes back on exit.
    """

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: object = None

    def __call__(self) -> bool:
        return self.received is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signal.Signals(signum).name
        log.warning("%s received: stopping after the current training step",
                    self.received)

    def __enter__(self) -> StopOnSignal:
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGTERM, self._previous)


def stop_in_slurm_job() -> AbstractContextManager[Callable[[], bool] | None]:
    """A StopOnSignal for SIGTERM inside a SLURM job's main thread; elsewhere None (a
    terminal's Ctrl-C or a plain kill keeps its usual meaning)."""
    if "SLURM_JOB_ID" in os.environ and threading.current_thread() is threading.main_thread():
        return StopOnSignal()
    return contextlib.nullcontext()
