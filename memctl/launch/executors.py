"""submitit executors: slurm (job arrays on a cluster), local (subprocesses), debug (in-process).

Each kind is one module under launch/backends/ behind the Backend interface; this module
builds the executor for any of them, and the local ranks of a multi-GPU retrain. Invalid
parameter names are rejected with the list of valid ones (submitit's own check), never
silently dropped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import submitit

from memctl.config import SlurmConfig
from memctl.errors import UserError
from memctl.launch.backends import SIGNAL_DELAY_S, get_backend
from memctl.launch.container import python_command

log = logging.getLogger(__name__)

def make_executor(kind: str, folder: Path, slurm: SlurmConfig, *, name: str, workers: int,
                  threads_per_worker: int = 1,
                  binds: Sequence[str | Path] | None = None) -> submitit.Executor:
    """A submitit executor; with `slurm.container` set, jobs run inside that Apptainer image.

    `binds` are the host paths jobs need (run dir, model, data, cache; see
    memctl.launch.container.config_binds); the submitit folder and $MEMCTL_BINDS /
    $MEMCTL_CACHE are always added.
    """
    backend = get_backend(kind)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)  # pickled job specs hold the storage URL
    if slurm.time_min * 60 <= SIGNAL_DELAY_S + 60:
        raise UserError(f"slurm.time_min: must exceed {(SIGNAL_DELAY_S + 60) // 60} minutes "
                        f"(checkpoint signal is sent {SIGNAL_DELAY_S} s before the limit)")
    ctor: dict = {}
    if slurm.container and not backend.runs_container:
        log.warning("slurm.container is ignored by the %s executor (jobs run in this process)",
                    kind)
    elif slurm.container:
        python = python_command(slurm.container, [folder, *(binds or ())],
                                gpus=slurm.gpus_per_node > 0)
        ctor[f"{kind}_python"] = python
    executor = submitit.AutoExecutor(folder=folder, cluster=kind, **ctor)
    params = backend.parameters(slurm, name=name, workers=workers,
                                threads_per_worker=threads_per_worker)
    try:
        executor.update_parameters(**params)
    except (ValueError, TypeError) as err:
        raise UserError(f"slurm parameters: {err}") from None
    return executor


def local_ranks_executor(folder: Path, gpus: int) -> submitit.Executor:
    """`gpus` data-parallel ranks on this node, one process per GPU (a multi-GPU retrain).

    submitit's local executor starts the ranks and exports their distributed environment;
    the training engine picks it up.
    """
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    executor = submitit.AutoExecutor(folder=folder, cluster="local")
    executor.update_parameters(tasks_per_node=gpus, timeout_min=7 * 24 * 60,
                               gpus_per_node=gpus if torch.cuda.is_available() else 0)
    return executor
