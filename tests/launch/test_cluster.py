"""A SLURM request no node can hold is refused before submitting; status shows pending
workers with SLURM's reason."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from memctl.config import SlurmConfig
from memctl.errors import UserError
from memctl.launch.cluster import (
    SLURM_JOBS_ATTR,
    Node,
    check_request,
    gpu_count,
    parse_sinfo,
    record_slurm_jobs,
)

SMALL_NODE = [Node(cpus=2, mem_mb=21694, gpus=2)]


@pytest.mark.parametrize(("gres", "gpus"), [
    ("gpu:2", 2), ("(null)", 0), ("gpu:a100:4(S:0-1),mps:400", 4),
    ("gpu:a100:2,gpu:v100:1", 3), ("mps:100", 0),
])
def test_gpu_count(gres, gpus):
    assert gpu_count(gres) == gpus


def test_parse_sinfo_one_line_per_node():
    assert parse_sinfo("2|21694|gpu:2\n64+|512000|(null)\n\n") == [
        Node(2, 21694, 2), Node(64, 512000, 0)]


@pytest.mark.parametrize(("request_", "message"), [
    ({"cpus_per_task": 8}, "slurm.cpus_per_task=8: the largest node of partition gpu has 2 CPUs"),
    ({"mem_gb": 64}, "slurm.mem_gb=64: the largest node of partition gpu has 21 GB"),
    ({"gpus_per_node": 4}, "slurm.gpus_per_node=4: nodes of partition gpu have at most 2 GPUs"),
])
def test_request_larger_than_every_node_names_the_field(request_, message):
    with pytest.raises(UserError, match=message):
        check_request(SlurmConfig(**request_), SMALL_NODE)


def test_request_split_across_nodes_is_refused():
    nodes = [Node(cpus=32, mem_mb=8192, gpus=0), Node(cpus=4, mem_mb=256000, gpus=4)]
    with pytest.raises(UserError, match="no node of partition gpu has 8 CPUs, 64 GB and 1"):
        check_request(SlurmConfig(cpus_per_task=8, mem_gb=64, gpus_per_node=1), nodes)


def test_missing_partition_is_refused():
    with pytest.raises(UserError, match="slurm.partition=gpu: no such partition"):
        check_request(SlurmConfig(), [])


def test_default_request_fits_the_dev_cluster_node():
    check_request(SlurmConfig(), SMALL_NODE)


def test_job_ids_recorded_per_array():
    study = optuna.create_study(directions=["minimize", "minimize"])
    record_slurm_jobs(study, ["12_0", "12_1"])
    record_slurm_jobs(study, ["15_0", "12_0"])
    assert study.user_attrs[SLURM_JOBS_ATTR] == ["12", "15"]


def _memctl(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "memctl", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=300)


@pytest.mark.slurm
def test_search_refuses_a_request_the_partition_cannot_hold(tmp_path, dev_cluster):
    proc = _memctl(tmp_path, "search", "--executor", "slurm", "--partition", "gpu",
                   "--detach", "slurm.cpus_per_task=64")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "memctl: error: slurm.cpus_per_task=64: the largest node of partition gpu has ")
    assert not (tmp_path / "memctl-runs" / "cache").exists()  # refused before building


@pytest.mark.slurm
def test_status_shows_pending_workers_with_slurms_reason(tmp_path, dev_cluster):
    from memctl.config import Config
    from memctl.search.study import create_study, default_storage_url

    cfg = Config(run_dir=str(tmp_path / "memctl-runs"))
    cfg.run_path.mkdir()
    study = create_study(cfg, default_storage_url(cfg))
    study.set_user_attr("config", cfg.to_dict())
    study.set_user_attr("n_bits", 16)
    job = subprocess.run(["sbatch", "--parsable", "-p", "cpu", "--begin=now+1hour",
                          "--array=0-1", "--wrap", "true"], capture_output=True, text=True,
                         check=True).stdout.strip().split(";")[0]
    try:
        # squeue shows reason None until the scheduler's first pass over the new job
        for _ in range(60):
            reason = subprocess.run(["squeue", "-h", "-j", job, "-o", "%r"], text=True,
                                    capture_output=True).stdout.split()
            if reason and reason[0] != "None":
                break
            time.sleep(0.5)
        record_slurm_jobs(study, [f"{job}_0", f"{job}_1"])
        proc = _memctl(tmp_path, "status")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert f"slurm job {job}_[0-1]: pending (BeginTime)" in proc.stdout
        jobs = json.loads(_memctl(tmp_path, "status", "--json").stdout)["slurm_jobs"]
        assert jobs == [{"job_id": f"{job}_[0-1]", "state": "PENDING", "reason": "BeginTime"}]
    finally:
        subprocess.run(["scancel", job], check=False)
