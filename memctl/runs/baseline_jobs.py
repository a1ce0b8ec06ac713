"""`memctl baselines --executor slurm|local|debug`: the grid as one job array, a task per run
that trains its own model; runs another one equals are marked at submission, and the
results are gathered once every task has ended.

Each task is `run_baselines` on one baseline, so it resumes and skips as a run here does: a
requeued or resubmitted task reuses a finished retrain and evaluation.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import submitit

from memctl.config import Config, config_from_dict
from memctl.locks import build_lock
from memctl.runs.baselines import Baseline, plan_baselines, run_baselines, write_same_as
from memctl.runs.target import RetrainTarget

log = logging.getLogger(__name__)


class BaselineJob(submitit.helpers.Checkpointable):
    """One array task: retrains (and evaluates) one baseline; requeued on timeout or
    preemption, it resumes from the training checkpoint."""

    def __call__(self, cfg_dict: dict, base: Baseline, command: str, evaluate_too: bool,
                 pick: RetrainTarget | None) -> dict:
        cfg = config_from_dict(cfg_dict)

        def stage(name: str, message: str) -> None:
            print(f"baselines: {name}: {message}", file=sys.stderr, flush=True)

        def step(name: str, done: int, total: int, loss: float) -> None:
            if done == total or done % max(1, total // 20) == 0:  # every 5% in the job log
                stage(name, f"step {done}/{total}, loss {loss:.4f}")

        # A second submission of the same grid (a user re-running while tasks still run)
        # waits here for the first task, then reuses its finished run.
        with build_lock(Path(cfg.run_dir) / "baselines" / base.name):
            return run_baselines(cfg, [base], command, on_stage=stage, on_step=step,
                                 evaluate_too=evaluate_too, pick=pick)[base.name]


@dataclass
class SubmittedBaselines:
    job_ids: dict[str, str]
    """Run name -> job id of the runs trained in a task."""
    same_as: dict[str, str]
    """Run name -> the run it equals (marked, not trained)."""
    folder: str
    results: dict[str, dict] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def submit_baselines(cfg: Config, baselines: Sequence[Baseline], command: str, *,
                     executor: str, evaluate_too: bool = True,
                     pick: RetrainTarget | None = None, follow: bool = True,
                     on_progress: Callable[[str], None] | None = None,
                     poll_s: float = 5.0) -> SubmittedBaselines:
    """Builds the cache here (tasks never race to build it), submits one array task per run
    that trains its own model and, following, waits for them and gathers the results."""
    from memctl.launch.backends import get_backend
    from memctl.launch.container import config_binds
    from memctl.launch.executors import make_executor
    from memctl.workspace import prepare

    backend = get_backend(executor)
    backend.check(cfg.slurm)
    ws = prepare(cfg)
    plan = plan_baselines(cfg, baselines, pick)
    own = [base for base, same in plan if same is None]
    same_as = {base.name: same for base, same in plan if same is not None}
    for name, same in same_as.items():
        write_same_as(Path(cfg.run_dir) / "baselines" / name, same)
    folder = Path(cfg.run_dir) / "jobs" / "baselines" / time.strftime("%Y%m%d-%H%M%S")
    ex = make_executor(executor, folder, cfg.slurm, name="memctl-baselines", workers=len(own),
                       threads_per_worker=backend.threads_per_worker(cfg.slurm, len(own)),
                       binds=[*config_binds(cfg), str(ws.model_dir), str(ws.cache_path.parent)])
    n = len(own)
    jobs = ex.map_array(BaselineJob(), [cfg.to_dict()] * n, own, [command] * n,
                        [evaluate_too] * n, [pick] * n)
    out = SubmittedBaselines({b.name: str(j.job_id) for b, j in zip(own, jobs, strict=True)},
                             same_as, str(folder))
    if not follow:
        return out
    say = on_progress or (lambda _msg: None)
    if not backend.runs_in_process:
        last = -1
        while (done := sum(j.done() for j in jobs)) < n:
            if done != last:
                say(f"{done}/{n} runs finished")
                last = done
            time.sleep(poll_s)
    for base, job in zip(own, jobs, strict=True):
        try:
            out.results[base.name] = job.result()
        except Exception as err:  # one run failing leaves the others' results standing
            out.errors[base.name] = str(err).strip().splitlines()[-1] if str(err) else repr(err)
    say(f"{n - len(out.errors)}/{n} runs finished")
    results = dict(out.results)
    for name, same in same_as.items():
        if same in results:
            results[name] = {**results[same], "same_as": same}
    out.results = {b.name: results[b.name] for b in baselines if b.name in results}
    return out
