"""The search head: prepare once, create the study once, submit workers, follow the study.

Progress is read from the study's storage (the source of truth), not from the scheduler.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

from memctl import __version__, peft
from memctl.config import Config
from memctl.errors import Interrupted
from memctl.launch.backends import get_backend
from memctl.launch.container import config_binds
from memctl.launch.executors import make_executor
from memctl.runs.scoring import real_stats
from memctl.search.objective import TrialContext
from memctl.search.space import params_from_mask
from memctl.search.study import (
    GLOBAL_ATTR,
    check_reachable,
    create_study,
    mask_url,
    method_configs,
    storage_url,
)
from memctl.search.worker import Worker, WorkerSpec, reclaim_dead_local_trials
from memctl.train.stop import INTERRUPTED_EXIT_CODE, StopOnSignal
from memctl.workspace import Progress, prepare, proxy_set

log = logging.getLogger(__name__)


@dataclass
class StudyCounts:
    complete: int = 0
    running: int = 0
    failed: int = 0
    waiting: int = 0

    @classmethod
    def of(cls, study: optuna.Study) -> StudyCounts:
        c = cls()
        for t in study.get_trials(deepcopy=False):
            if t.state == TrialState.COMPLETE:
                c.complete += 1
            elif t.state == TrialState.RUNNING:
                c.running += 1
            elif t.state == TrialState.FAIL:
                c.failed += 1
            elif t.state == TrialState.WAITING:
                c.waiting += 1
        return c


@dataclass
class SearchResult:
    study: str
    storage: str
    """Masked storage URL, safe to print."""
    counts: StudyCounts
    job_ids: list[str] = field(default_factory=list)
    worker_errors: list[str] = field(default_factory=list)
    submitit_folder: str = ""


def build_context(cfg: Config, progress: Progress | None = None) -> TrialContext:
    """Prepares model, data and cache and resolves everything a worker needs."""
    ws = prepare(cfg, progress)
    reader = ws.reader()
    from memctl.runs.scoring import require_split

    require_split(reader, cfg, "val", "each search trial")  # before any job is submitted
    proxy = proxy_set(cfg, reader)
    from memctl.models.load import load_components

    unet = load_components(ws.model_dir, text=False).unet
    return TrialContext(
        model_dir=str(ws.model_dir.resolve()),
        cache_path=str(ws.cache_path.resolve()),
        train_indices=proxy.train_indices,
        dmem_indices=proxy.dmem_indices,
        n_bits=peft.num_bits(unet, cfg.peft.space),
        block_names=peft.block_names(unet, cfg.peft.space),
    )


def setup_study(cfg: Config, ctx: TrialContext, url: str,
                enqueue: Sequence[Sequence[int]] = (),
                global_study: str | None = None) -> optuna.Study:
    study = create_study(cfg, url)
    attrs = study.user_attrs
    if "config" not in attrs:  # first head: record what this study searches
        if global_study:  # so status, retrain and report find the method's study
            study.set_user_attr(GLOBAL_ATTR, global_study)
        study.set_user_attr("config", cfg.to_dict())
        study.set_user_attr("memctl_version", __version__)
        study.set_user_attr("n_bits", ctx.n_bits)
        # Fixed now, so hypervolumes of this study compare across reports and over time.
        study.set_user_attr("hv_reference", list(cfg.search.hv_reference))
        study.set_user_attr("block_names", ctx.block_names)
        study.set_user_attr("dmem_indices", ctx.dmem_indices)
        study.set_user_attr("model_dir", ctx.model_dir)
        study.set_user_attr("cache_path", ctx.cache_path)
    elif attrs.get("n_bits") != ctx.n_bits or attrs["config"]["peft"] != cfg.to_dict()["peft"]:
        from memctl.errors import UserError

        raise UserError(f"study {cfg.search.study!r} was created for another search space "
                        f"({attrs['config']['peft']}); use another --study name")
    elif (recorded := attrs["config"].get("search", {}).get("dmem", "noised")) != cfg.search.dmem:
        from memctl.errors import UserError

        raise UserError(f"study {cfg.search.study!r} scores {recorded} d_mem (search.dmem), "
                        f"not {cfg.search.dmem}; use another --study name")
    masks = [list(m) for m in enqueue]
    if cfg.search.enqueue_baseline:
        masks.insert(0, [1] * ctx.n_bits)
    for bits in masks:
        if len(bits) != ctx.n_bits:
            from memctl.errors import UserError

            raise UserError(f"--enqueue {''.join(map(str, bits))}: expected {ctx.n_bits} bits")
        study.enqueue_trial(params_from_mask(bits), skip_if_exists=True)
    return study


def run_searches(
    cfg: Config,
    *,
    follow: bool = True,
    enqueue: Sequence[Sequence[int]] = (),
    progress: Progress | None = None,
    on_study: Callable[[Config], None] | None = None,
    on_poll: Callable[[StudyCounts], None] | None = None,
    poll_s: float = 2.0,
) -> list[SearchResult]:
    """The search of cfg: one study, or a global search's one per method (search.methods),
    run one after another (following) or all submitted at once (not following). The
    model, data and cache are prepared once and shared."""
    global_study = cfg.search.study if cfg.search.methods else None
    results = []
    for one in method_configs(cfg):
        if on_study:
            on_study(one)
        results.append(run_search(one, follow=follow, enqueue=enqueue, progress=progress,
                                  on_poll=on_poll, poll_s=poll_s, global_study=global_study))
    return results


def run_search(
    cfg: Config,
    *,
    follow: bool = True,
    enqueue: Sequence[Sequence[int]] = (),
    progress: Progress | None = None,
    on_poll: Callable[[StudyCounts], None] | None = None,
    poll_s: float = 2.0,
    global_study: str | None = None,
) -> SearchResult:
    url = storage_url(cfg)
    check_reachable(url)  # before the cache build, which can take hours
    backend = get_backend(cfg.search.executor)
    backend.check(cfg.slurm)  # likewise: a request no node can hold pends forever
    ctx = build_context(cfg, progress)
    study = setup_study(cfg, ctx, url, enqueue, global_study)
    # Real-image statistics once here, so workers never race to write them.
    from memctl.data.cache import CacheReader
    from memctl.metrics.features import get_extractor

    real_stats(CacheReader(ctx.cache_path), "val",
               get_extractor(cfg.eval.extractor, cfg.eval.extractor_weights or None),
               cfg.model.resolution)
    folder = Path(cfg.run_dir) / "jobs" / cfg.search.study / time.strftime("%Y%m%d-%H%M%S")
    workers = cfg.search.workers
    threads = backend.threads_per_worker(cfg.slurm, workers)
    executor = make_executor(cfg.search.executor, folder, cfg.slurm,
                             name=f"memctl-{cfg.search.study}", workers=workers,
                             threads_per_worker=threads,
                             binds=[*config_binds(cfg), ctx.model_dir,
                                    str(Path(ctx.cache_path).parent)])
    specs = [WorkerSpec(cfg.to_dict(), url, ctx, cfg.search.trials, i) for i in range(workers)]
    if backend.on_this_machine:
        reclaimed = reclaim_dead_local_trials(study, cfg.search.max_retries)
        if reclaimed:
            log.info("re-enqueued trial(s) %s of local workers that are gone", reclaimed)
    with _sigint_ignored(backend.ignores_sigint):
        jobs = executor.map_array(Worker(), specs)
    result = SearchResult(cfg.search.study, mask_url(url), StudyCounts.of(study),
                          [str(j.job_id) for j in jobs], submitit_folder=str(folder))
    backend.record_jobs(study, result.job_ids)
    if not follow:
        return result
    with StopOnSignal((signal.SIGINT, signal.SIGTERM), message=None) as interrupted:
        _follow(cfg, jobs, study, interrupted, on_poll, poll_s)
        for j in jobs:
            try:
                j.result()
            except Exception as err:  # a worker died: its trials are failed/retried
                result.worker_errors.append(
                    f"job {j.job_id}: {str(err).strip().splitlines()[-1]}")
        # Workers stop once running trials would fill the study, some of them another
        # search's (two searches may share a study): follow those too, so the count is the
        # study's own.
        _wait(lambda: not interrupted() and _trials_running(study), study, on_poll, poll_s)
        if interrupted():  # only other searches' trials were left to follow
            raise _interrupted(cfg, study)
    result.counts = StudyCounts.of(study)  # read from storage at exit
    if on_poll:
        on_poll(result.counts)
    return result


class SearchInterrupted(Interrupted):
    """The search was stopped with Ctrl-C; its workers stopped cleanly."""


def _follow(cfg: Config, jobs: list, study: optuna.Study, interrupted: Callable[[], bool],
            on_poll: Callable[[StudyCounts], None] | None, poll_s: float) -> None:
    """Follows the workers until they end; on Ctrl-C stops them and raises
    SearchInterrupted once they have handed their trials back."""
    backend = get_backend(cfg.search.executor)
    if backend.runs_in_process:  # debug jobs run in this process when asked for results
        for j in jobs:
            try:
                j.result()
            except SystemExit as stop:  # the worker stopped on Ctrl-C
                if stop.code != INTERRUPTED_EXIT_CODE:
                    raise
                raise _interrupted(cfg, study) from None
    _wait(lambda: not interrupted() and not all(j.done() for j in jobs), study, on_poll, poll_s)
    if not interrupted():
        return
    keeps_running = backend.keeps_running_message([str(j.job_id) for j in jobs])
    if keeps_running:
        raise SearchInterrupted(keeps_running)
    for j in jobs:
        _stop_local_job(j)
    _wait(lambda: not all(j.done() for j in jobs), study, on_poll, poll_s)
    raise _interrupted(cfg, study)


def _interrupted(cfg: Config, study: optuna.Study) -> SearchInterrupted:
    c = StudyCounts.of(study)
    return SearchInterrupted(
        f"search interrupted: {c.complete} of {cfg.search.trials} trials complete, "
        f"{c.waiting} waiting to be retried; the same command goes on from there")


def _stop_local_job(job) -> None:
    """Asks a local job to stop at its next step boundary. submitit's own cancel() sends
    SIGINT to the job's controller, which then kills the worker a second later, before it
    can checkpoint; SIGTERM is forwarded to the worker as is."""
    process = getattr(job, "_process", None)  # the controller submitit started
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)


@contextlib.contextmanager
def _sigint_ignored(active: bool) -> Iterator[None]:
    """Local workers start with Ctrl-C ignored (a disposition child processes inherit), so
    the terminal's SIGINT to the whole process group does not reach submitit's controller,
    which would kill its worker mid-step; this process stops them instead."""
    if not active or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _wait(busy: Callable[[], bool], study: optuna.Study,
          on_poll: Callable[[StudyCounts], None] | None, poll_s: float) -> None:
    """Polls the study's counts while `busy()` holds."""
    while busy():
        if on_poll:
            on_poll(StudyCounts.of(study))
        time.sleep(poll_s)


def _trials_running(study: optuna.Study) -> bool:
    """Whether any trial of the study still runs. A dead worker's trial is failed as stale
    first, so the wait ends within the heartbeat grace period."""
    optuna.storages.fail_stale_trials(study)  # no-op for storages without heartbeats
    return StudyCounts.of(study).running > 0
