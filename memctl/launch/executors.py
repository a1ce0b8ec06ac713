"""submitit executors: slurm (job arrays on a cluster), local (subprocesses), debug (in-process).

The one place that turns SlurmConfig into submitit parameters; invalid names are rejected
with the list of valid ones (submitit's own check), never silently dropped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import submitit

from memctl.config import EXECUTORS, SlurmConfig
from memctl.errors import UserError
from memctl.launch.container import python_command

log = logging.getLogger(__name__)

# The SLURM signal submitit uses to checkpoint before the time limit; SLURM may send it up
# to 60 s early, so jobs need time_min * 60 > this + 60.
SIGNAL_DELAY_S = 120


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


def make_executor(kind: str, folder: Path, slurm: SlurmConfig, *, name: str, workers: int,
                  threads_per_worker: int = 1,
                  binds: Sequence[str | Path] | None = None) -> submitit.Executor:
    """A submitit executor; with `slurm.container` set, jobs run inside that Apptainer image.

    `binds` are the host paths jobs need (run dir, model, data, cache; see
    memctl.launch.container.config_binds); the submitit folder and $MEMCTL_BINDS /
    $MEMCTL_CACHE are always added.
    """
    if kind not in EXECUTORS:
        raise UserError(f"--executor {kind!r}: must be one of {', '.join(EXECUTORS)}")
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)  # pickled job specs hold the storage URL
    if slurm.time_min * 60 <= SIGNAL_DELAY_S + 60:
        raise UserError(f"slurm.time_min: must exceed {(SIGNAL_DELAY_S + 60) // 60} minutes "
                        f"(checkpoint signal is sent {SIGNAL_DELAY_S} s before the limit)")
    ctor: dict = {}
    if slurm.container and kind == "debug":
        log.warning("slurm.container is ignored by the debug executor (jobs run in this process)")
    elif slurm.container:
        python = python_command(slurm.container, [folder, *(binds or ())],
                                gpus=slurm.gpus_per_node > 0)
        ctor[f"{kind}_python"] = python
    executor = submitit.AutoExecutor(folder=folder, cluster=kind, **ctor)
    if kind == "slurm":
        params = slurm_parameters(slurm, name=name, workers=workers)
    else:
        params = dict(name=name, timeout_min=slurm.time_min, cpus_per_task=threads_per_worker)
        if kind == "local":
            params["local_setup"] = [f"export OMP_NUM_THREADS={threads_per_worker}"]
    try:
        executor.update_parameters(**params)
    except (ValueError, TypeError) as err:
        raise UserError(f"slurm parameters: {err}") from None
    return executor
