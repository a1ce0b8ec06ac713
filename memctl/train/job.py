"""A training call that survives preemption and time limits under submitit.

    job = executor.submit(TrainJob(run_fn, cfg, out_dir=...))

On SLURM's warning signal (USR2: time limit near, or preemption) submitit calls
`checkpoint()`, which hands back this same call; submitit requeues the job and, when it runs
again, the training resumes from the newest checkpoint in its run folder (train.checkpoint_every
must be > 0). Only the steps since that checkpoint are repeated, and since every random state
is restored the final weights equal an uninterrupted run's. A job requeued by other means
(`scontrol requeue`, node failure) reruns the original call and resumes the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import submitit


class TrainJob(submitit.helpers.Checkpointable):
    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def __call__(self) -> Any:
        return self.fn(*self.args, **self.kwargs)

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        # No state to save here: the signal lands mid-step, and the loop's own checkpoints
        # are the consistent ones. Resubmitting the same call resumes from them.
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)
