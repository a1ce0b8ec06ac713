"""Distributed search against the real local SLURM cluster and PostgreSQL (slurm/dev/up.sh).

Each test runs `memctl search --executor slurm` as a user would, workers as one SLURM job
array on the `gpu` partition (fake GPU GRES), the study in PostgreSQL, and injects one fault.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.slurm_jobs import release_requeued

pytestmark = [pytest.mark.slurm, pytest.mark.postgres, pytest.mark.slow]

TINY = [
    "data.synth_n=60", "data.dmem_size=4", "data.dmem_repeats=4", "train.batch_size=4",
    "train.lr=1e-3", "eval.fid_samples=4", "eval.num_inference_steps=2",
    "eval.dmem_timesteps=[500]", "eval.dmem_noise_seeds=1", "search.population_size=2",
    "slurm.partition=gpu", "slurm.gpus_per_node=1", "slurm.cpus_per_task=1",
    "slurm.mem_gb=2", "slurm.time_min=10", "search.heartbeat_s=3",
]


def memctl(cwd: Path, *args: str, check: bool = True,
           timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "memctl", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=timeout, env=os.environ.copy())
    if check:
        assert proc.returncode == 0, f"memctl {args[0]} failed:\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture
def pg(dev_cluster) -> str:
    return dev_cluster["MEMCTL_TEST_PG_URL"]


@pytest.fixture
def study_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def load(pg: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=pg)


def wait_for(predicate, timeout: float, what: str, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:  # the database may be restarting under us
            value = None
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def states(study: optuna.Study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def sacct_state(job_id: str) -> str:
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"],
                         capture_output=True, text=True).stdout.strip().splitlines()
    return out[0] if out else ""


def test_array_of_workers_fills_one_postgres_study(tmp_path, pg, study_name):
    out = memctl(tmp_path, "search", "--executor", "slurm", "--trials", "6", "--workers", "3",
                 "--storage", pg, "--study", study_name, "--json", *TINY, "train.steps=3")
    summary = json.loads(out.stdout)
    password = pg.split(":")[2].split("@")[0]
    assert password not in out.stdout + out.stderr and "***" in summary["storage"]
    study = load(pg, study_name)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 6 and states(study) == {"COMPLETE": 6}
    # One array: every trial ran under the same array job id, on distinct array tasks.
    array_ids = {t.user_attrs["slurm_array_job_id"] for t in done}
    tasks = {t.user_attrs["slurm_array_task_id"] for t in done}
    assert len(array_ids) == 1 and len(tasks) >= 2
    assert study.user_attrs["config"]["peft"]["method"] == "attention"
    # The head enqueued the all-ones baseline first.
    assert done[0].user_attrs["mask"] == "1" * 16 or any(
        t.user_attrs["mask"] == "1" * 16 for t in done)
    # Optuna's own tools read the study.
    best = subprocess.run(["optuna", "best-trials", "--study-name", study_name, "--storage", pg,
                           "-f", "json"], capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{Path(sys.executable).parent}:"
                               + os.environ["PATH"]})
    assert best.returncode == 0, best.stderr
    assert json.loads(best.stdout)
    status = json.loads(memctl(tmp_path, "status", "--storage", pg, "--study", study_name,
                               "--json").stdout)
    assert status["counts"]["COMPLETE"] == 6 and status["front"]


def test_worker_killed_mid_trial_is_retried_with_same_mask(tmp_path, pg, study_name):
    memctl(tmp_path, "search", "--executor", "slurm", "--trials", "3", "--workers", "2",
           "--storage", pg, "--study", study_name, "--detach", *TINY, "train.steps=40",
           "train.checkpoint_every=5")
    study = load(pg, study_name)

    def running_with_checkpoint():
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            out = t.user_attrs.get("out_dir")
            if out and "pid" in t.user_attrs and any(Path(out).glob("**/step-*")):
                return t
        return None

    victim = wait_for(running_with_checkpoint, 300, "a running trial with a checkpoint")
    os.kill(int(victim.user_attrs["pid"]), 9)
    wait_for(lambda: states(load(pg, study_name)).get("COMPLETE", 0) >= 3, 400,
             "3 complete trials after the kill", every=2)
    study = load(pg, study_name)
    trials = study.get_trials(deepcopy=False)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.number for t in failed] == [victim.number]
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim._trial_id
               or optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t)
               == victim.number]
    assert retries and retries[0].params == victim.params
    assert retries[0].state == TrialState.COMPLETE
    assert retries[0].user_attrs["resumed_from"] > 0  # continued from the checkpoint
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 3


def test_requeued_job_stops_at_a_step_and_resumes_its_trial_there(tmp_path, pg, study_name):
    steps = 60
    memctl(tmp_path, "search", "--executor", "slurm", "--trials", "1", "--workers", "1",
           "--storage", pg, "--study", study_name, "--detach", *TINY, f"train.steps={steps}",
           "train.checkpoint_every=5", "search.enqueue_baseline=true")
    study = load(pg, study_name)

    def running_with_checkpoint():
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            out = t.user_attrs.get("out_dir")
            if out and "slurm_job_id" in t.user_attrs and any(Path(out).glob("**/step-*")):
                return t
        return None

    first = wait_for(running_with_checkpoint, 300, "a running trial with a checkpoint", every=0.25)
    job_id = first.user_attrs["slurm_job_id"]
    # SIGTERM now, SIGKILL KillWait later: the worker checkpoints its current step and exits
    # instead of training on (and perhaps finishing the trial) under the dying incarnation.
    subprocess.run(["scontrol", "requeue", job_id], check=True)
    release_requeued(job_id)
    wait_for(lambda: states(load(pg, study_name)).get("COMPLETE", 0) >= 1, 400,
             "the requeued trial to complete", every=2)
    trials = load(pg, study_name).get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 1  # told once
    done = complete[0]
    assert done.params == first.params and done.user_attrs["slurm_job_id"] == job_id
    assert 0 < done.user_attrs["resumed_from"] < steps
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.number for t in failed] == [first.number]
    assert "requeued" in failed[0].system_attrs.get("fail_reason", "")
    stderr = Path(done.user_attrs["log"]).with_suffix(".err").read_text()
    assert f"training stopped after step {done.user_attrs['resumed_from']};" in stderr


def test_postgres_restart_during_search_loses_nothing(tmp_path, pg, study_name, dev_cluster):
    memctl(tmp_path, "search", "--executor", "slurm", "--trials", "4", "--workers", "2",
           "--storage", pg, "--study", study_name, "--detach", *TINY, "train.steps=20",
           "search.heartbeat_s=5")
    wait_for(lambda: states(load(pg, study_name)).get("RUNNING", 0) >= 1, 300,
             "a running trial")
    # Down for longer than the heartbeat grace period (2 x 5 s): no live trial may be failed.
    subprocess.run([dev_cluster["MEMCTL_TEST_PG_RESTART"], "12"], check=True, timeout=120)
    wait_for(lambda: states(load(pg, study_name)).get("COMPLETE", 0) >= 4, 400,
             "4 complete trials after the restart", every=2)
    time.sleep(3)  # let any straggler finish telling
    counts = states(load(pg, study_name))
    assert counts.get("COMPLETE") == 4 and counts.get("FAIL", 0) == 0, counts


def test_two_heads_cooperate_on_one_study(tmp_path, pg, study_name):
    args = ["search", "--executor", "slurm", "--trials", "4", "--workers", "1", "--storage", pg,
            "--study", study_name, "--detach", *TINY, "train.steps=3"]
    memctl(tmp_path, *args)
    memctl(tmp_path, *args)  # a user resubmits: same study, not a second one
    wait_for(lambda: states(load(pg, study_name)).get("COMPLETE", 0) >= 4, 400,
             "4 complete trials", every=2)
    time.sleep(5)
    names = [s.study_name for s in optuna.get_all_study_summaries(pg)]
    assert names.count(study_name) == 1
    complete = states(load(pg, study_name))["COMPLETE"]
    assert 4 <= complete <= 5  # at most one per extra worker in flight
    baseline = [t for t in load(pg, study_name).trials if t.user_attrs.get("mask") == "1" * 16]
    assert len(baseline) == 1  # enqueued once although two heads ran


def test_failing_trial_is_recorded_and_search_goes_on(tmp_path, pg, study_name):
    # lr=1e30 makes any trained mask diverge (NaN loss); the all-zeros mask trains nothing.
    out = memctl(tmp_path, "search", "--executor", "slurm", "--trials", "1", "--workers", "1",
                 "--storage", pg, "--study", study_name, "--enqueue", "0" * 16, "--json",
                 *TINY, "train.steps=4", "train.lr=1e30")
    assert json.loads(out.stdout)["complete"] == 1
    trials = load(pg, study_name).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[0].user_attrs["mask"] == "1" * 16
    assert "loss is nan" in trials[0].user_attrs["error"].lower() or "inf" in trials[0].user_attrs[
        "error"].lower()
    status = json.loads(memctl(tmp_path, "status", "--storage", pg, "--study", study_name,
                               "--json").stdout)
    (failed,) = status["failed"]
    assert failed["error"] and failed["log"] and Path(failed["log"]).exists()
    text = memctl(tmp_path, "status", "--storage", pg, "--study", study_name).stdout
    assert "failed" in text and failed["log"] in text.replace("\n", "")
