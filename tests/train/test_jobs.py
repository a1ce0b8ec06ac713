"""Training as submitit jobs: data-parallel ranks, preemption and requeue.

Jobs run tests.train._tiny.run in fresh processes; references run in this process with
the same thread count (CPU float sums depend on it), so weights must match bit for bit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import submitit
import torch

from memctl.train.job import TrainJob
from tests.slurm_jobs import release_requeued
from tests.train._tiny import MASK_UP, REPO, run

TRAIN = dict(bits=MASK_UP, steps=4, checkpoint_every=1, threads=1)
WAIT_S = 240


@pytest.fixture(autouse=True)
def importable_tests(monkeypatch):
    """Job processes import tests.train._tiny: put the repository on their path."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))


def _executor(kind: str, folder: Path, **params) -> submitit.Executor:
    if kind == "local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=5, **params)
        return ex
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    # kill-on-bad-exit: a failed rank takes the others down instead of leaving them waiting
    ex.update_parameters(timeout_min=5, slurm_partition=os.environ.get(
        "MEMCTL_TEST_SLURM_PARTITION", "cpu"), cpus_per_task=1, mem_gb=2,
        slurm_srun_args=["--kill-on-bad-exit=1"], **params)
    return ex


def _wait_for(path: Path, job: submitit.Job, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if job.done():
            pytest.fail(f"job ended before {path.name} appeared:\n{job.stderr()}")
        assert time.monotonic() < deadline, f"{path} did not appear in {timeout} s"
        time.sleep(0.3)


def _assert_same(a: dict, b: dict) -> None:
    assert a["losses"] == b["losses"]
    for name, value in a["state"].items():
        assert torch.equal(value, b["state"][name]), name


@pytest.mark.parametrize("kind", ["local", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_two_ranks_end_with_identical_weights(kind, tmp_path, request):
    if kind == "slurm":
        request.getfixturevalue("slurm_env")
    ex = _executor(kind, tmp_path / "jobs", tasks_per_node=2)
    job = ex.submit(TrainJob(run, str(tmp_path / "out"), engine="deepspeed", zero_stage=2,
                             bits=MASK_UP, steps=3, threads=1))
    results = job.results()
    assert sorted(r["rank"] for r in results) == [0, 1]
    assert all(r["world_size"] == 2 for r in results)
    first, second = results
    _assert_same(first, second)
    assert (tmp_path / "out" / "metrics.jsonl").exists()


def test_local_preemption_signal_resumes_to_identical_weights(tmp_path):
    reference = run(**TRAIN)
    ex = _executor("local", tmp_path / "jobs")
    out = tmp_path / "out"
    job = ex.submit(TrainJob(run, str(out), step_sleep=1.0, **TRAIN))
    _wait_for(out / "checkpoints" / "step-00000001", job)
    # LocalJob._interrupt() signals the controller, which does not forward USR2 to its tasks;
    # signal the task itself, as SLURM does. checkpoint() resubmits, the controller restarts.
    os.kill(int((out / "pid-rank0").read_text()), signal.SIGUSR2)
    result = job.result()
    assert result["resumed_from"] >= 1
    _assert_same(reference, result)


@pytest.mark.slurm
def test_slurm_timeout_signal_requeues_and_resumes(slurm_env, tmp_path):
    reference = run(**TRAIN)
    out = tmp_path / "out"
    job = _executor("slurm", tmp_path / "jobs").submit(
        TrainJob(run, str(out), step_sleep=1.5, **TRAIN))
    _wait_for(out / "checkpoints" / "step-00000001", job)
    job._interrupt(timeout=True)  # what SLURM sends before the time limit
    release_requeued(job.job_id)
    result = job.result()
    assert result["resumed_from"] >= 1
    _assert_same(reference, result)


@pytest.mark.slurm
def test_slurm_scontrol_requeue_resumes(slurm_env, tmp_path):
    reference = run(**TRAIN)
    out = tmp_path / "out"
    job = _executor("slurm", tmp_path / "jobs").submit(
        TrainJob(run, str(out), step_sleep=3.0, **TRAIN))
    _wait_for(out / "checkpoints" / "step-00000001", job)
    subprocess.run(["scontrol", "requeue", job.job_id], check=True, timeout=30)
    release_requeued(job.job_id)
    result = job.result()
    assert result["resumed_from"] >= 1
    _assert_same(reference, result)


def test_sigterm_to_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    ex = _executor("local", tmp_path / "jobs", tasks_per_node=2)
    out = tmp_path / "out"
    args = dict(bits=MASK_UP, steps=8, checkpoint_every=6, threads=1)
    job = ex.submit(TrainJob(run, str(out), step_sleep=1.0, stop_on_sigterm=True, **args))
    _wait_for(out / "metrics.jsonl", job)  # step 0 is done
    os.kill(int((out / "pid-rank0").read_text()), signal.SIGTERM)  # rank 1 hears nothing
    with pytest.raises(submitit.core.utils.UncompletedJobError, match="training stopped after"):
        job.results()
    deadline = time.monotonic() + 60
    while not job.done():  # rank 1 ended too: it does not wait at a collective rank 0 left
        assert time.monotonic() < deadline, "rank 1 did not stop"
        time.sleep(0.3)
    newest = max((out / "checkpoints").glob("step-*"))
    stopped_at = int(newest.name.split("-")[1])
    assert 1 <= stopped_at < 6  # saved off the every-6 schedule, by both ranks
    assert {p.name for p in newest.glob("loop-rank*.pt")} == {"loop-rank0.pt", "loop-rank1.pt"}
    resumed = ex.submit(TrainJob(run, str(out), **args)).results()
    assert [r["resumed_from"] for r in resumed] == [stopped_at, stopped_at]
    _assert_same(*resumed)
