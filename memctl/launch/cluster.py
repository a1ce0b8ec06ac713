"""What the SLURM cluster says: the partition's nodes (sinfo) and queued jobs (squeue).

SLURM accepts a job that asks more CPUs, memory or GPUs than any node of its partition has,
then leaves it PENDING (reason PartitionConfig) forever. The search head checks its request
against the nodes sinfo lists before submitting, and refuses one no node can hold with one
line naming the field; `memctl status` shows workers still pending with SLURM's reason.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memctl.config import SlurmConfig
from memctl.errors import UserError

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

_SINFO_FORMAT = "%c|%m|%G"  # CPUs | memory in MB | generic resources, one line per node


@dataclass(frozen=True)
class Node:
    cpus: int
    mem_mb: int
    gpus: int


def gpu_count(gres: str) -> int:
    """GPUs in a node's GRES string: `gpu:2`, `gpu:a100:4(S:0-1),mps:400`, `(null)`."""
    plain = re.sub(r"\([^)]*\)", "", gres)  # socket bindings, "(null)"
    total = 0
    for item in plain.split(","):
        parts = item.strip().split(":")
        if parts[0] == "gpu" and len(parts) >= 2 and parts[-1].isdigit():
            total += int(parts[-1])
    return total


def parse_sinfo(text: str) -> list[Node]:
    """Nodes from `sinfo -N -h -o '%c|%m|%G'` lines (sizes may carry a trailing '+')."""
    nodes = []
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 3:
            continue
        cpus, mem = (f.rstrip("+") for f in fields[:2])
        if cpus.isdigit() and mem.isdigit():
            nodes.append(Node(int(cpus), int(mem), gpu_count(fields[2])))
    return nodes


def partition_nodes(partition: str) -> list[Node] | None:
    """The nodes of `partition` as sinfo lists them; None when sinfo cannot tell (not
    installed, controller unreachable): the check is then skipped, never guessed."""
    sinfo = shutil.which("sinfo")
    if sinfo is None:
        return None
    try:
        out = subprocess.run([sinfo, "-N", "-h", "-p", partition, "-o", _SINFO_FORMAT],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        log.warning("sinfo failed (%s); the SLURM request is not checked", err)
        return None
    if out.returncode != 0:
        log.warning("sinfo failed (%s); the SLURM request is not checked",
                    out.stderr.strip().splitlines()[-1:] or out.returncode)
        return None
    return parse_sinfo(out.stdout)


def check_request(slurm: SlurmConfig, nodes: list[Node]) -> None:
    """Raises UserError when no node of the partition can run one worker task."""
    where = f"partition {slurm.partition}"
    if not nodes:
        raise UserError(f"slurm.partition={slurm.partition}: no such partition, or it has no "
                        f"nodes (see `sinfo`)")
    mem_mb = slurm.mem_gb * 1024  # SLURM's GB (submitit's --mem=<n>GB) are 1024 MB
    largest = Node(max(n.cpus for n in nodes), max(n.mem_mb for n in nodes),
                   max(n.gpus for n in nodes))
    if slurm.cpus_per_task > largest.cpus:
        raise UserError(f"slurm.cpus_per_task={slurm.cpus_per_task}: the largest node of "
                        f"{where} has {largest.cpus} CPUs")
    if mem_mb > largest.mem_mb:
        raise UserError(f"slurm.mem_gb={slurm.mem_gb}: the largest node of {where} has "
                        f"{largest.mem_mb // 1024} GB ({largest.mem_mb} MB)")
    if slurm.gpus_per_node > largest.gpus:
        raise UserError(f"slurm.gpus_per_node={slurm.gpus_per_node}: nodes of {where} have "
                        f"at most {largest.gpus} GPUs")
    if not any(n.cpus >= slurm.cpus_per_task and n.mem_mb >= mem_mb
               and n.gpus >= slurm.gpus_per_node for n in nodes):
        raise UserError(f"slurm: no node of {where} has {slurm.cpus_per_task} CPUs, "
                        f"{slurm.mem_gb} GB and {slurm.gpus_per_node} GPUs at once "
                        f"(slurm.cpus_per_task, slurm.mem_gb, slurm.gpus_per_node)")


def check_partition(slurm: SlurmConfig) -> None:
    """check_request against the live cluster, when sinfo can tell."""
    nodes = partition_nodes(slurm.partition)
    if nodes is not None:
        check_request(slurm, nodes)


@dataclass(frozen=True)
class QueuedJob:
    job_id: str
    """As squeue prints it: `123_4`, or `123_[0-7]` for array tasks still pending together."""
    state: str
    reason: str


def queued_jobs(job_ids: list[str]) -> list[QueuedJob] | None:
    """The given jobs (array ids match all their tasks) still in SLURM's queue; None when
    squeue cannot tell."""
    squeue = shutil.which("squeue")
    if squeue is None or not job_ids:
        return None
    try:
        out = subprocess.run([squeue, "-h", "-j", ",".join(job_ids), "-o", "%i|%T|%r"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:  # squeue fails when every id has left the queue
        return [] if "Invalid job id" in out.stderr else None
    jobs = []
    for line in out.stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) == 3:
            jobs.append(QueuedJob(*fields))
    return jobs


SLURM_JOBS_ATTR = "slurm_jobs"
"""Study attribute: ids of the SLURM worker arrays its heads submitted (`memctl status`
asks squeue about them, so a worker array that cannot start shows with SLURM's reason)."""


def record_slurm_jobs(study: optuna.Study, job_ids: list[str]) -> None:
    """Adds the arrays of `job_ids` (`123_4` -> `123`) to the study's SLURM_JOBS_ATTR."""
    arrays = list(dict.fromkeys(j.split("_")[0] for j in job_ids))
    known = list(study.user_attrs.get(SLURM_JOBS_ATTR, []))
    study.set_user_attr(SLURM_JOBS_ATTR, (known + [a for a in arrays if a not in known])[-50:])
