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
INTERRUPTED_EXIT_CODE = 128 + signal.SIGINT
"""What a run stopped for good (Ctrl-C, or a stop outside SLURM) exits with."""


class TrainingStopped(BaseException):
    """Raised by train() after the step during which a stop was requested, once that step is
    checkpointed. A BaseException on purpose: handlers that record failures (Optuna's among
    them) let it pass, since the run is not failed but waits to be resumed."""

    def __init__(self, step: int, checkpointed: bool) -> None:
        super().__init__(f"training stopped after step {step}"
                         + ("" if checkpointed else " (no checkpoint kept)"))
        self.step, self.checkpointed = step, checkpointed


class StopOnSignal:
    """A stop request set by SIGTERM (or the given signals); call the instance to ask whether
    one arrived. A second SIGINT (Ctrl-C pressed again) stops at once: KeyboardInterrupt.

    Use as a context manager in the main thread; the previous handlers come back on exit.
    """

    def __init__(self, signals: tuple[signal.Signals, ...] = (signal.SIGTERM,),
                 message: str | None = "stopping after the current training step") -> None:
        self.received: str | None = None
        self.signals, self.message = signals, message
        self._previous: dict[signal.Signals, object] = {}

    def __call__(self) -> bool:
        return self.received is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        if self.message:
            log.warning("%s received: %s", self.received, self.message)

    def __enter__(self) -> StopOnSignal:
        self._previous = {sig: signal.signal(sig, self._handle) for sig in self.signals}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def in_slurm_job() -> bool:
    return "SLURM_JOB_ID" in os.environ


def stop_in_slurm_job() -> AbstractContextManager[Callable[[], bool] | None]:
    """A StopOnSignal for SIGTERM inside a SLURM job's main thread; elsewhere None (a
    terminal's Ctrl-C or a plain kill keeps its usual meaning)."""
    if in_slurm_job() and _main_thread():
        return StopOnSignal()
    return contextlib.nullcontext()


def stop_on_interrupt() -> AbstractContextManager[Callable[[], bool] | None]:
    """A StopOnSignal for Ctrl-C (SIGINT) and SIGTERM in the main thread, for runs outside
    SLURM whose stop is final (no requeue brings them back); None in other threads."""
    if _main_thread():
        return StopOnSignal((signal.SIGINT, signal.SIGTERM))
    return contextlib.nullcontext()
