"""Process-group environment: launcher, submitit tasks, or a lone process.

torch.distributed's env:// needs MASTER_ADDR/PORT, RANK, WORLD_SIZE (and LOCAL_RANK for the
device). A launcher (deepspeed, torchrun) sets them; a submitit job with several tasks gets
them from its SLURM/local environment; a single process gets loopback defaults.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist

KEYS = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class Rank:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _submitit_tasks() -> int:
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return 0
    import submitit

    try:
        return submitit.JobEnvironment().num_tasks
    except RuntimeError:
        return 0


def setup_env() -> Rank:
    """Exports the env:// variables where absent and returns this process's rank."""
    if _submitit_tasks() > 1:
        import submitit

        # Variables inherited from the submitting process describe another job (its port may
        # be its own live store): drop them, so every task derives the port from the job id.
        for key in KEYS:
            os.environ.pop(key, None)
        submitit.helpers.TorchDistributedEnvironment().export(overwrite=True)
    elif not dist.is_initialized() and os.environ.get("WORLD_SIZE", "1") == "1":
        # A lone process agrees with nobody: a fresh port never collides with a parent's store.
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0",
                          WORLD_SIZE="1", LOCAL_RANK="0")
    for key, default in (("MASTER_ADDR", "127.0.0.1"), ("LOCAL_RANK", "0")):
        os.environ.setdefault(key, default)
    missing = [k for k in KEYS if k not in os.environ]
    if missing:
        raise RuntimeError(f"distributed environment incomplete: {', '.join(missing)} unset")
    return Rank(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                int(os.environ["LOCAL_RANK"]))


def device_for(rank: Rank) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", rank.local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def init_process_group(rank: Rank, device: torch.device) -> None:
    """A process group only when there is someone to talk to (the torch engine)."""
    if rank.world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend_for(device))
        if device.type == "cuda":
            torch.cuda.set_device(device)


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if active():
        dist.barrier()


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Sums a few scalars over all ranks (identity in a lone process)."""
    if not active():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def all_gather_cat(x: torch.Tensor) -> torch.Tensor:
    """Concatenates equal-shaped tensors from all ranks in rank order."""
    if not active():
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)
