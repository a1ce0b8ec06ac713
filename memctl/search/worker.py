"""What each SLURM (or local) job runs: trials of one shared study until it holds enough.

Workers never create storage or the study (the head did); each builds its own NSGA-II
sampler with seed = base seed + worker index so workers propose different masks.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from memctl.config import config_from_dict
from memctl.search.objective import TrialContext, run_trial
from memctl.search.space import bits_str, suggest_mask
from memctl.search.study import load_study

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


def _enough(study: optuna.Study, n_trials: int) -> bool:
    """True once complete + running trials reach the cap.

    Counting running trials avoids overshoot; if one of them fails, its own worker is still
    alive and runs the replacement.
    """
    states = (TrialState.COMPLETE, TrialState.RUNNING)
    return len(study.get_trials(deepcopy=False, states=states)) >= n_trials


def run_worker(spec: WorkerSpec) -> dict:
    """Runs trials until the study is full; returns a small summary of this worker's work."""
    cfg = config_from_dict(spec.config)
    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads:
        import torch

        torch.set_num_threads(threads)
    study = load_study(cfg, spec.storage_url, spec.worker_index)
    ctx = spec.context
    trials_root = Path(cfg.run_dir) / "trials" / cfg.search.study
    job = _job_info()
    done: list[int] = []

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        bits = suggest_mask(trial, ctx.n_bits)
        out = trials_root / f"{trial.number:05d}"
        out.mkdir(parents=True, exist_ok=True)
        trial.set_user_attr("mask", bits_str(bits))
        trial.set_user_attr("out_dir", str(out))
        for key, value in job.items():
            trial.set_user_attr(key, value)
        log_path = os.environ.get("SUBMITIT_STDOUT")
        if log_path:
            trial.set_user_attr("log", log_path)
        try:
            scores = run_trial(cfg, ctx, bits, out)
        except Exception as err:
            # Keep the reason on the trial; Optuna then records it as FAIL and we go on.
            trial.set_user_attr("error", f"{type(err).__name__}: {err}"[:500])
            (out / "error.txt").write_text(traceback.format_exc())
            raise
        for key, value in scores.as_dict().items():
            if key not in ("d_mem", "fid"):
                trial.set_user_attr(key, value)
        done.append(trial.number)
        return scores.d_mem, scores.fid

    start = time.time()
    while not _enough(study, spec.n_trials):
        study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
    return {"worker": spec.worker_index, "trials": done, "seconds": round(time.time() - start, 1),
            **job}
