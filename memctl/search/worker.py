"""What each SLURM (or local) job runs: trials of one shared study until it holds enough.

Workers never create storage or the study (the head did); each builds its own NSGA-II
sampler with seed = base seed + worker index so workers propose different masks.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
import submitit
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from memctl.config import config_from_dict
from memctl.data.json_files import write_json
from memctl.runs.target import MASK_FILE, mask_file
from memctl.search.objective import TrialContext, run_trial
from memctl.search.space import bits_str, suggest_mask
from memctl.search.study import load_study
from memctl.train.stop import (
    EXIT_CODE,
    INTERRUPTED_EXIT_CODE,
    TrainingStopped,
    in_slurm_job,
    stop_in_slurm_job,
    stop_on_interrupt,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSpec:
    config: dict
    storage_url: str
    context: TrialContext
    n_trials: int
    """Global cap: the study's number of COMPLETE trials to reach."""
    worker_index: int = 0


def _job_info() -> dict[str, str]:
    info = {}
    for env, key in (("SLURM_JOB_ID", "slurm_job_id"), ("SLURM_ARRAY_JOB_ID", "slurm_array_job_id"),
                     ("SLURM_ARRAY_TASK_ID", "slurm_array_task_id"),
                     ("SLURMD_NODENAME", "node")):
        if os.environ.get(env):
            info[key] = os.environ[env]
    info.setdefault("node", os.uname().nodename)
    info["pid"] = str(os.getpid())
    return info


def _counts(study: optuna.Study) -> dict[TrialState, int]:
    counts = dict.fromkeys(TrialState, 0)
    for t in study.get_trials(deepcopy=False):
        counts[t.state] += 1
    return counts


def _enough(study: optuna.Study, n_trials: int) -> bool:
    """True once the study is full, counting trials other workers are running.

    Stale trials (a dead worker's) are failed first so their retries are counted as WAITING,
    which keeps this worker alive to run them. Counting running trials avoids overshoot; if
    one of them fails, its own worker is alive and runs the replacement.
    """
    optuna.storages.fail_stale_trials(study)  # no-op for storages without heartbeats
    c = _counts(study)
    if c[TrialState.COMPLETE] >= n_trials:
        return True
    return c[TrialState.WAITING] == 0 and c[TrialState.COMPLETE] + c[TrialState.RUNNING] >= n_trials


def run_one_trial(study: optuna.Study, objective, *, gc_after_trial: bool = True) -> int | None:
    """One trial through ``study.optimize`` (heartbeat, stale check, tell); returns the trial's
    number when it was taken from this worker, else None.

    Another process fails a trial as stale when its heartbeat lapsed past the grace period
    (a starved node, a network partition); the stale callback has then enqueued its retry.
    The objective's next storage write or Optuna's tell raises on the finished trial; that
    is not this worker's failure, so the worker goes on (and may pick the retry itself).
    """
    asked: list[int] = []

    def tracked(trial: optuna.Trial):
        asked.append(trial._trial_id)
        return objective(trial)

    try:
        study.optimize(tracked, n_trials=1, catch=(Exception,), gc_after_trial=gc_after_trial)
    except Exception as err:  # Optuna may surface the refused tell as an AssertionError
        if not (asked and _refused_as_finished(err)
                and study._storage.get_trial(asked[0]).state.is_finished()):
            raise
        number = study._storage.get_trial(asked[0]).number
        log.warning("trial %d was failed by another process (its heartbeat lapsed past the "
                    "grace period); its retry resumes from the trial's checkpoint", number)
        return number
    return None


def stop_if_taken(trial: optuna.Trial, every_s: float) -> Callable[[int, int, float], None]:
    """A training step callback that aborts the trial once another process has failed it.

    Without it a worker whose trial was failed as stale would train on, in the same folder
    as the retry that resumes from its checkpoints; with it the overlap is at most `every_s`.
    """
    storage, last = trial.study._storage, [time.monotonic()]

    def on_step(step: int, total: int, loss: float) -> None:
        if time.monotonic() - last[0] < every_s:
            return
        last[0] = time.monotonic()
        if storage.get_trial(trial._trial_id).state.is_finished():
            raise UpdateFinishedTrialError(
                f"trial {trial.number} was failed by another process at step {step}")

    return on_step


def _refused_as_finished(err: BaseException | None) -> bool:
    """The storage refused a write or tell because the trial was already finished."""
    while err is not None:
        if isinstance(err, UpdateFinishedTrialError) or (
                isinstance(err, ValueError) and str(err).startswith("Cannot tell a")):
            return True
        err = err.__cause__ or err.__context__
    return False


def _root_number(trial: optuna.Trial | FrozenTrial) -> int:
    """The first trial of a retry chain: retries share its folder and so its checkpoints."""
    frozen = trial if isinstance(trial, FrozenTrial) else trial.study._storage.get_trial(
        trial._trial_id)
    original = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
    return frozen.number if original is None else original


def fail_and_retry(study: optuna.Study, trials: list[FrozenTrial], reason: str,
                   max_retry: int) -> None:
    """Fails RUNNING trials whose run is over and re-enqueues each with its mask, as the
    heartbeat's stale check would later: the retry shares the trial's folder, so it
    resumes from the trial's training checkpoint."""
    retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
    for t in trials:
        study._storage.set_trial_system_attr(t._trial_id, "fail_reason", reason)
        if study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
            retry(study, study._storage.get_trial(t._trial_id))


def reclaim_own_trials(study: optuna.Study, job: dict[str, str], max_retry: int) -> list[int]:
    """Fails and re-enqueues trials still RUNNING under this very SLURM job.

    A requeued or preempted job keeps its job id; its previous incarnation's trial is dead.
    Failing it now (rather than after the heartbeat grace period) lets this worker pick the
    retry at once and resume it from the trial's training checkpoint.
    """
    if "slurm_job_id" not in job:
        return []
    mine = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.user_attrs.get("slurm_job_id") == job["slurm_job_id"]]
    fail_and_retry(study, mine, "job requeued or preempted", max_retry)
    return [t.number for t in mine]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def reclaim_dead_local_trials(study: optuna.Study, max_retry: int) -> list[int]:
    """Fails and re-enqueues RUNNING trials of local workers on this machine whose process
    is gone (killed without a chance to stop cleanly), so a new search runs them at once
    instead of counting them as running until their heartbeat lapses."""
    host = os.uname().nodename
    dead = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if "slurm_job_id" not in t.user_attrs and t.user_attrs.get("node") == host
            and str(t.user_attrs.get("pid", "")).isdigit()
            and not _pid_alive(int(t.user_attrs["pid"]))]
    fail_and_retry(study, dead, "worker process gone", max_retry)
    return [t.number for t in dead]


class Worker(submitit.helpers.Checkpointable):
    """Runs trials until the study is full; requeued by submitit on timeout or preemption.

    On USR2 submitit calls checkpoint(), which resubmits this same worker; the new
    incarnation reclaims its interrupted trial and resumes it from the training checkpoint.
    On SIGTERM (`scontrol requeue`, preemption, scancel) the trial stops after its current
    step, checkpointed, and is left RUNNING for that same reclaim (or, when the job does
    not come back, for another worker once its heartbeat lapses).
    """

    def __call__(self, spec: WorkerSpec) -> dict:
        return run_worker(spec)


def run_worker(spec: WorkerSpec) -> dict:
    """Runs trials until the study is full; returns a small summary of this worker's work.

    In a SLURM job, SIGTERM stops the trial at a step boundary and leaves it RUNNING for the
    job's next run. Elsewhere (local and debug workers) Ctrl-C or SIGTERM is final: the
    trial stops at a step boundary, checkpointed, and is failed and re-enqueued with its
    mask, so the next search resumes it; the worker exits with INTERRUPTED_EXIT_CODE.
    """
    if not in_slurm_job():
        with stop_on_interrupt() as stop:
            return _run_trials(spec, should_stop=stop, final_stop=True)
    with stop_in_slurm_job() as stop:  # only SLURM jobs are reclaimed by their next run
        try:
            return _run_trials(spec, should_stop=stop)
        except TrainingStopped as stopped:
            log.warning("%s; the trial resumes from its checkpoint in this job's next run, "
                        "or in another worker once its heartbeat lapses", stopped)
            # Like submitit's own requeue: exit without a result, the trial left RUNNING.
            raise SystemExit(EXIT_CODE) from None


def _run_trials(spec: WorkerSpec, should_stop: Callable[[], bool] | None,
                final_stop: bool = False) -> dict:
    """The trial loop. `final_stop`: a stop request ends this worker for good (see
    run_worker), so the stopped trial is handed back to the study at once."""
    cfg = config_from_dict(spec.config)
    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads:
        import torch

        torch.set_num_threads(threads)
    study = load_study(cfg, spec.storage_url, spec.worker_index)
    ctx = spec.context
    trials_root = (Path(cfg.run_dir) / "trials" / cfg.search.study).resolve()
    job = _job_info()
    reclaimed = reclaim_own_trials(study, job, cfg.search.max_retries)
    if reclaimed:
        log.info("reclaimed interrupted trial(s) %s", reclaimed)
    done: list[int] = []
    lost: list[int] = []  # failed as stale by another process while this worker ran them
    failures = 0
    current: list[int] = []  # storage id of the trial being run

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        nonlocal failures
        current[:] = [trial._trial_id]
        bits = suggest_mask(trial, ctx.n_bits)
        out = trials_root / f"{_root_number(trial):05d}"
        try:
            out.mkdir(parents=True, exist_ok=True)
            # The trial's mask as a file: `memctl retrain --mask TRIAL_FOLDER` retrains it.
            write_json(out / MASK_FILE, mask_file(
                cfg.peft.method, cfg.peft.space, cfg.peft.always, bits, ctx.block_names,
                f"study {study.study_name} trial {trial.number}"))
            trial.set_user_attr("mask", bits_str(bits))
            trial.set_user_attr("out_dir", str(out))
            for key, value in job.items():
                trial.set_user_attr(key, value)
            log_path = os.environ.get("SUBMITIT_STDOUT") or _submitit_log()
            if log_path:
                trial.set_user_attr("log", log_path)
            scores = run_trial(cfg, ctx, bits, out,
                               on_step=stop_if_taken(trial, cfg.search.heartbeat_s),
                               should_stop=should_stop)
        except UpdateFinishedTrialError:
            raise  # failed as stale by another process: see run_one_trial
        except Exception as err:
            # Keep the reason on the trial; Optuna then records it as FAIL and we go on.
            failures += 1
            (out / "error.txt").write_text(traceback.format_exc())
            trial.set_user_attr("error", f"{type(err).__name__}: {err}"[:500])
            raise
        failures = 0
        for key, value in scores.as_dict().items():
            if key not in ("d_mem", "fid"):
                trial.set_user_attr(key, value)
        done.append(trial.number)
        return scores.d_mem, scores.fid

    start = time.time()
    while not _enough(study, spec.n_trials):
        if should_stop is not None and should_stop():
            log.warning("stopping between trials: %s", "interrupted" if final_stop
                        else "this job is being requeued or ended")
            raise SystemExit(INTERRUPTED_EXIT_CODE if final_stop else EXIT_CODE)
        if failures >= cfg.search.max_consecutive_failures:
            log.error("stopping: %d trials failed in a row on this worker", failures)
            break
        try:
            taken = run_one_trial(study, objective)
        except TrainingStopped as stopped:
            if not final_stop:
                raise
            _hand_back(study, current[0], stopped, cfg.search.max_retries)
            raise SystemExit(INTERRUPTED_EXIT_CODE) from None
        if taken is not None:
            lost.append(taken)
            if taken in done:  # scored, but the tell was refused
                done.remove(taken)
    return {"worker": spec.worker_index, "trials": done, "failures_in_a_row": failures,
            "reclaimed": reclaimed, "lost": lost, "seconds": round(time.time() - start, 1), **job}


def _hand_back(study: optuna.Study, trial_id: int, stopped: TrainingStopped,
               max_retry: int) -> None:
    """Fails the interrupted trial and re-enqueues its mask for the next search."""
    trial = study._storage.get_trial(trial_id)
    fail_and_retry(study, [trial], f"interrupted ({stopped})", max_retry)
    log.warning("trial %d interrupted: %s; re-enqueued, its retry %s", trial.number, stopped,
                "resumes from that step" if stopped.checkpointed else "starts over")


def _submitit_log() -> str:
    """Path of this job's submitit stdout log, when running under submitit."""
    try:
        return str(submitit.JobEnvironment().paths.stdout)
    except (RuntimeError, KeyError):  # not under submitit, or its debug executor
        return ""
