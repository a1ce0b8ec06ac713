"""Local executor: workers are subprocesses of this machine, sharing its cores."""

from __future__ import annotations

from memctl.config import SlurmConfig
from memctl.launch.backends.base import Backend


class LocalBackend(Backend):
    name = "local"
    ignores_sigint = True

    def parameters(self, slurm: SlurmConfig, *, name: str, workers: int,
                   threads_per_worker: int) -> dict:
        params = super().parameters(slurm, name=name, workers=workers,
                                    threads_per_worker=threads_per_worker)
        params["local_setup"] = [f"export OMP_NUM_THREADS={threads_per_worker}"]
        return params


BACKEND = LocalBackend()
