"""The interface every executor backend implements: submitit parameters and how the search
head treats its jobs (where they run, how they stop)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import optuna

    from memctl.config import SlurmConfig

# The SLURM signal submitit uses to checkpoint before the time limit; SLURM may send it up
# to 60 s early, so jobs need time_min * 60 > this + 60.
SIGNAL_DELAY_S = 120


class Backend:
    """Defaults describe jobs on this machine (local subprocesses)."""

    name: ClassVar[str]
    # Jobs run inside slurm.container when one is set (False: they run in this process).
    runs_container: ClassVar[bool] = True
    # Jobs run only when their results are asked for, in this process.
    runs_in_process: ClassVar[bool] = False
    # Jobs start with Ctrl-C ignored; the head stops them instead.
    ignores_sigint: ClassVar[bool] = False
    # Jobs share this machine: dead workers' trials are reclaimed, cores are divided.
    on_this_machine: ClassVar[bool] = True

    def check(self, slurm: SlurmConfig) -> None:
        """Fails early on a request the backend can never serve."""

    def threads_per_worker(self, slurm: SlurmConfig, workers: int) -> int:
        # local workers share this machine's cores
        return max(1, (os.cpu_count() or 1) // workers)

    def parameters(self, slurm: SlurmConfig, *, name: str, workers: int,
                   threads_per_worker: int) -> dict:
        """submitit `update_parameters` arguments for a worker array."""
        return dict(name=name, timeout_min=slurm.time_min, cpus_per_task=threads_per_worker)

    def record_jobs(self, study: optuna.Study, job_ids: list[str]) -> None:
        """Remembers the jobs in the study, for `memctl status`."""

    def keeps_running_message(self, job_ids: list[str]) -> str | None:
        """Why Ctrl-C on the head leaves the jobs running, or None when the head stops them."""
        return None
