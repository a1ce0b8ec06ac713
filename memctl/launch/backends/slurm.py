"""SLURM executor: worker job arrays on a cluster, requeued on preemption or time limit.

The one place that turns SlurmConfig into submitit's sbatch parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memctl.config import SlurmConfig
from memctl.launch.backends.base import SIGNAL_DELAY_S, Backend
from memctl.launch.cluster import check_partition, record_slurm_jobs

if TYPE_CHECKING:
    import optuna


def slurm_parameters(slurm: SlurmConfig, *, name: str, workers: int) -> dict:
    """submitit `update_parameters` arguments for a worker array."""
    params: dict = dict(
        name=name,
        timeout_min=slurm.time_min,
        slurm_partition=slurm.partition,
        cpus_per_task=slurm.cpus_per_task,
        mem_gb=slurm.mem_gb,
        nodes=1,
        tasks_per_node=1,
        slurm_array_parallelism=min(workers, slurm.array_parallelism),
        slurm_signal_delay_s=SIGNAL_DELAY_S,
    )
    if slurm.gpus_per_node:
        params["gpus_per_node"] = slurm.gpus_per_node
    for key in ("account", "qos", "constraint"):
        if getattr(slurm, key):
            params[f"slurm_{key}"] = getattr(slurm, key)
    # Workers are requeued on preemption / time limit (submitit's USR2 checkpoint).
    extra: dict[str, str | bool] = {"requeue": True}
    for line in slurm.extra_sbatch:
        key, _, value = line.lstrip("-").partition("=")
        extra[key] = value or True  # a bare flag such as --exclusive renders without '='
    params["slurm_additional_parameters"] = extra
    if slurm.setup:
        params["slurm_setup"] = list(slurm.setup)
    return params


class SlurmBackend(Backend):
    name = "slurm"
    on_this_machine = False

    def check(self, slurm: SlurmConfig) -> None:
        check_partition(slurm)  # a request no node can hold pends forever

    def threads_per_worker(self, slurm: SlurmConfig, workers: int) -> int:
        return slurm.cpus_per_task

    def parameters(self, slurm: SlurmConfig, *, name: str, workers: int,
                   threads_per_worker: int) -> dict:
        return slurm_parameters(slurm, name=name, workers=workers)

    def record_jobs(self, study: optuna.Study, job_ids: list[str]) -> None:
        record_slurm_jobs(study, job_ids)

    def keeps_running_message(self, job_ids: list[str]) -> str | None:
        ids = " ".join(job_ids)
        return (f"stopped following; the SLURM workers keep running "
                f"(`memctl status` follows the study, `scancel {ids}` stops them)")


BACKEND = SlurmBackend()
