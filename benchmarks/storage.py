"""Study storage under many concurrent workers: ask / tell latency as the study grows.

    .venv/bin/python benchmarks/storage.py                      # 8, 32, 64 workers, 5,000 trials
    .venv/bin/python benchmarks/storage.py --trials 1000 --workers 8 32   # a quick run
    .venv/bin/python benchmarks/storage.py --storage memory --trials 4000 --gc-after-trial off

N worker processes (forked, each with its own storage and its own seeded sampler, built by
memctl's make_storage / make_sampler: heartbeats on, as in production) wait on one barrier and
then run memctl's worker loop against one shared study until it holds T trials:

    while not _enough(study, T):                           # memctl.search.worker's stop check
        run_one_trial(study, objective)                    # study.optimize(n_trials=1)

The objective only suggests the 16-bit mask (memctl.search.space.suggest_mask) and returns two
conflicting linear scores of it, so every millisecond measured is Optuna + storage:

    ask   optimize() entry -> the 16 suggests done: stale-trial check, trial creation, NSGA-II
          relative sampling, heartbeat thread start, 16 parameter writes
    tell  objective return -> optimize() return: heartbeat thread stop, tell (values, state,
          sampler.after_trial), gc.collect (timed separately as "gc")
    loop  memctl's _enough(): fail_stale_trials + reading every trial's state

Latencies are bucketed by trial number (the study's size when the trial was asked) and
summarised as median / p95 in milliseconds; trials/s is T over the time from the barrier to the
last worker's exit from its loop. Each run uses a fresh, uniquely named study, deleted after.

Storages: PostgreSQL (--pg-url; default $MEMCTL_BENCH_PG_URL, $MEMCTL_TEST_PG_URL, or the dev
cluster's env file from slurm/dev/up.sh), a journal file in a temporary directory, and
`memory`: one worker in this process on Optuna's in-memory storage, i.e. the sampler's own
per-ask cost with no database and no contention (run once, whatever --workers says).
The sampler is what memctl.search.study.make_sampler returns: Optuna's NSGAIISampler, which
since Optuna 5.1 keeps its generation bookkeeping between asks (ask p50 ~2 ms at 1,000 trials
in memory, flat as the study grows).
gc: Optuna's gc_after_trial runs a full gc.collect() after every trial, ~0.2 s with torch and
diffusers loaded; at 4,000 in-memory trials that alone is ~13 minutes, which is what a long
`--storage memory` run spends its time on. Against minutes of training per real trial it is
noise; `--gc-after-trial off` leaves it out of a benchmark.
Parameter writes (PostgreSQL): `each` is Optuna's one transaction per suggested parameter,
`batched` memctl's storage, one transaction for all of a trial's (memctl.search.batched_params);
the ask moves the write to the next storage call, so compare them on ask+tell.

Target: p95 ask+tell <= 100 ms with 64 workers at 5,000 trials on PostgreSQL. That needs a real
multi-core host (64 worker processes plus the server): on a 2-core machine 64 processes measure
CPU contention, not the storage. There, compare samplers with `--storage memory` (the
sampler's own cost) and `--workers 2 --storage pg`.

Prints results, asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import itertools
import json
import multiprocessing as mp
import os
import pstats
import shlex
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna

from memctl.config import Config, load_config
from memctl.search.space import suggest_mask
from memctl.search.study import create_study, make_sampler, make_storage, mask_url
from memctl.search.worker import _enough, run_one_trial

REPO = Path(__file__).resolve().parents[1]
N_BITS = 16
TARGET_MS = 100.0


def _pg_url_from_env() -> str:
    for key in ("MEMCTL_BENCH_PG_URL", "MEMCTL_TEST_PG_URL"):
        if os.environ.get(key):
            return os.environ[key]
    state = os.environ.get("MEMCTL_DEV_STATE")
    path = (Path(state) if state else REPO / ".dev-cluster") / "env"
    if path.is_file():
        for line in path.read_text().splitlines():
            words = shlex.split(line, comments=True)
            if len(words) == 2 and words[0] == "export" and words[1].startswith(
                    "MEMCTL_TEST_PG_URL="):
                return words[1].split("=", 1)[1]
    return ""


def _sampler(kind: str, cfg: Config, worker_index: int) -> optuna.samplers.BaseSampler:
    if kind == "memctl":
        return make_sampler(cfg, worker_index)
    # Optuna's NSGA-II built here with memctl's settings (make_sampler returns the same class).
    # Optuna's own NSGA-II with exactly memctl's settings: the "before".
    return optuna.samplers.NSGAIISampler(
        population_size=cfg.search.population_size,
        crossover_prob=cfg.search.crossover_prob,
        mutation_prob=cfg.search.mutation_prob or None,
        seed=cfg.search.seed + worker_index,
    )


_W1 = np.linspace(1.0, 2.0, N_BITS)
_W2 = np.linspace(2.0, 1.0, N_BITS) ** 2


def _scores(bits: list[int]) -> tuple[float, float]:
    """Two conflicting objectives (more blocks on: lower 'fid', higher 'd_mem')."""
    b = np.asarray(bits, dtype=float)
    return float(b @ _W1), float((1 - b) @ _W2)


def _worker(index: int, run: dict, cfg: Config, barrier, results) -> None:
    """One worker process; puts (index, rows, t_start, t_end) or (index, error) on results."""
    try:
        storage = run["memory"] if run["storage"] == "memory" else make_storage(
            run["url"], cfg, batch_params=run["param_writes"] != "each")
        study = optuna.load_study(study_name=cfg.search.study, storage=storage,
                                  sampler=_sampler(run["sampler"], cfg, index))
        gc_time = [0.0]
        collect = gc.collect

        def timed_collect(*args: int) -> int:
            t = time.perf_counter()
            try:
                return collect(*args)
            finally:
                gc_time[0] += time.perf_counter() - t

        gc.collect = timed_collect  # Optuna calls gc.collect() after each trial (gc_after_trial)
        stamp: dict[str, float] = {}

        def objective(trial: optuna.Trial) -> tuple[float, float]:
            bits = suggest_mask(trial, N_BITS)
            stamp["suggested"] = time.perf_counter()
            stamp["number"] = trial.number
            return _scores(bits)

        profiler = cProfile.Profile() if run["profile"] and index == 0 else None
        rows: list[tuple[int, float, float, float, float]] = []
        barrier.wait(timeout=600)
        t_start = time.monotonic()
        if profiler:
            profiler.enable()
        while True:
            t0 = time.perf_counter()
            if _enough(study, run["trials"]):
                break
            t1 = time.perf_counter()
            gc_time[0] = 0.0
            taken = run_one_trial(study, objective, gc_after_trial=run["gc_after_trial"])
            t2 = time.perf_counter()
            if taken is not None:  # failed as stale by another worker: no clean timing
                continue
            rows.append((int(stamp["number"]), stamp["suggested"] - t1,
                         t2 - stamp["suggested"] - gc_time[0], t1 - t0, gc_time[0]))
        t_end = time.monotonic()
        if profiler:
            profiler.disable()
            profiler.dump_stats(run["profile"])
        results.put((index, rows, t_start, t_end))
    except BaseException:
        barrier.abort()
        results.put((index, traceback.format_exc()))


class _NoBarrier:
    def wait(self, timeout: float | None = None) -> None:
        pass

    def abort(self) -> None:
        pass


def _run_in_process(run: dict, cfg: Config) -> dict:
    """`memory`: one worker, in this process, on Optuna's in-memory storage. No database and
    no other process: what is left is the sampler's own per-ask cost as the study grows."""
    import queue

    study_name = f"bench-memory-{run['sampler']}"
    cfg = replace(cfg, search=replace(cfg.search, study=study_name))
    run = {**run, "memory": optuna.storages.InMemoryStorage()}
    optuna.create_study(storage=run["memory"], study_name=study_name,
                        directions=["minimize", "minimize"])
    results: queue.Queue = queue.Queue()
    t_start = time.monotonic()
    _worker(0, run, cfg, _NoBarrier(), results)
    got = results.get()
    if len(got) == 2:
        raise RuntimeError(got[1])
    rows = np.array(got[1], dtype=float).reshape(-1, 5)
    return _summary(run, 1, rows, len(rows), len(rows), got[3] - t_start)


def _run(run: dict, cfg: Config, workers: int) -> dict:
    """One storage x sampler x worker count: a fresh study, N processes, one summary."""
    if run["storage"] == "memory":
        return _run_in_process(run, cfg)
    study_name = (f"bench-{run['storage']}-{run['sampler']}-{run['param_writes']}-{workers}w-"
                  f"{uuid.uuid4().hex[:8]}")
    cfg = replace(cfg, search=replace(cfg.search, study=study_name))
    head = create_study(cfg, run["url"])
    engine = getattr(getattr(head._storage, "_backend", None), "engine", None)
    if engine is not None:
        engine.dispose()  # no pooled connection may be inherited by the forked workers
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(workers + 1)
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(i, run, cfg, barrier, results), daemon=True)
             for i in range(workers)]
    try:
        for p in procs:
            p.start()
        # A worker that failed before the start breaks the barrier; its traceback is queued.
        with contextlib.suppress(Exception):
            barrier.wait(timeout=600)
        t_start = time.monotonic()
        got = [results.get(timeout=3600) for _ in procs]
        for p in procs:
            p.join()
        errors = [g[1] for g in got if len(g) == 2]
        if errors:
            raise RuntimeError(f"{len(errors)} worker(s) failed; first:\n{errors[0]}")
        t_end = max(g[3] for g in got)
        rows = np.array([r for g in got for r in g[1]], dtype=float).reshape(-1, 5)
        states = [t.state for t in head.get_trials(deepcopy=False)]
        complete = sum(s == optuna.trial.TrialState.COMPLETE for s in states)
        failed = sum(s == optuna.trial.TrialState.FAIL for s in states)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        try:
            optuna.delete_study(study_name=study_name, storage=head._storage)
        except Exception as err:  # report, keep going: the name is unique and printed
            print(f"warning: could not delete study {study_name}: {err}", file=sys.stderr)
    return _summary(run, workers, rows, complete, len(states), t_end - t_start, failed)


def _stats(ms: np.ndarray) -> dict:
    if ms.size == 0:
        return {"p50": None, "p95": None}
    return {"p50": round(float(np.median(ms)), 2), "p95": round(float(np.percentile(ms, 95)), 2)}


def _summary(run: dict, workers: int, rows: np.ndarray, complete: int, total: int,
             seconds: float, failed: int = 0) -> dict:
    """``failed``: live trials failed as stale (their heartbeat lapsed on starved CPUs)."""
    bucket = run["bucket"]
    number, ask, tell, loop, gcs = (rows[:, k] for k in range(5))
    ask, tell, loop, gcs = ask * 1e3, tell * 1e3, loop * 1e3, gcs * 1e3
    buckets = []
    for lo in range(0, int(number.max()) + 1 if number.size else 0, bucket):
        sel = (number >= lo) & (number < lo + bucket)
        buckets.append({
            "trials": [lo, lo + bucket - 1], "n": int(sel.sum()),
            "ask": _stats(ask[sel]), "tell": _stats(tell[sel]),
            "ask_tell": _stats(ask[sel] + tell[sel]), "gc": _stats(gcs[sel]),
            "loop": _stats(loop[sel]),
        })
    return {
        "storage": run["storage"], "sampler": run["sampler"], "param_writes": run["param_writes"],
        "workers": workers, "trials": run["trials"], "population_size": run["population_size"],
        "complete": complete, "created": total, "failed_stale": failed,
        "seconds": round(seconds, 2),
        "trials_per_s": round(complete / seconds, 1) if seconds > 0 else None,
        "all": {"ask": _stats(ask), "tell": _stats(tell), "ask_tell": _stats(ask + tell),
                "gc": _stats(gcs), "loop": _stats(loop)},
        "buckets": buckets,
    }


def _fmt(v: float | None) -> str:
    return "     -" if v is None else f"{v:6.1f}"


def _print(s: dict) -> None:
    print(f"\n{s['storage']} / {s['sampler']} sampler / parameter writes {s['param_writes']} / "
          f"{s['workers']} workers / population "
          f"{s['population_size']}: {s['complete']} COMPLETE ({s['created']} created, "
          f"{s['failed_stale']} failed as stale) in {s['seconds']:.1f} s = "
          f"{s['trials_per_s']} trials/s")
    print("  trials          n |  ask p50   p95 | tell p50   p95 | a+t p50   p95 |"
          "  gc p50   p95 | loop p50   p95   (ms)")
    for b in s["buckets"] + [dict(s["all"], trials=None, n=sum(b["n"] for b in s["buckets"]))]:
        label = "all" if b["trials"] is None else f"{b['trials'][0]}-{b['trials'][1]}"
        cells = " | ".join(f"  {_fmt(b[k]['p50'])}{_fmt(b[k]['p95'])}"
                           for k in ("ask", "tell", "ask_tell", "gc", "loop"))
        print(f"  {label:<12}{b['n']:5d} | {cells}")


def _print_overview(summaries: list[dict]) -> None:
    print("\nOverview (ms; 'last' = the bucket of the largest study size)")
    print("  storage   sampler  params   workers  trials/s  a+t p95 all  a+t p95 last  "
          f"loop p95 last  <= {TARGET_MS:.0f} ms")
    for s in summaries:
        # The largest study size with a full bucket (the overshoot bucket holds a few trials).
        full = [b for b in s["buckets"] if b["n"] * 2 >= s["trials"] // max(1, len(s["buckets"]))]
        last = full[-1] if full else s["all"]
        p95 = last["ask_tell"]["p95"]
        ok = "yes" if p95 is not None and p95 <= TARGET_MS else "no"
        print(f"  {s['storage']:<9} {s['sampler']:<8} {s['param_writes']:<8} {s['workers']:7d}  "
              f"{s['trials_per_s']:8}  "
              f"{_fmt(s['all']['ask_tell']['p95'])}       {_fmt(last['ask_tell']['p95'])}"
              f"        {_fmt(last['loop']['p95'])}       {ok}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--trials", type=int, default=5000, help="global trial count T")
    parser.add_argument("--bucket", type=int, default=0,
                        help="trials per latency bucket (default: 1000, or T/4 when T < 4000)")
    parser.add_argument("--population-size", type=int, default=20,
                        help="NSGA-II population (configs/mimic-sd15.yaml uses 20)")
    parser.add_argument("--storage", nargs="+", choices=("memory", "pg", "journal"),
                        default=["memory", "pg", "journal"],
                        help="memory: one in-process worker, the sampler's cost alone")
    parser.add_argument("--sampler", nargs="+", choices=("stock", "memctl"),
                        default=["stock", "memctl"])
    parser.add_argument("--pg-url", default=None,
                        help="SQLAlchemy URL (default: $MEMCTL_BENCH_PG_URL, $MEMCTL_TEST_PG_URL "
                             "or the dev cluster's env file)")
    parser.add_argument("--profile", metavar="DIR", default=None,
                        help="cProfile worker 0 of each run; writes DIR/<run>.prof, prints top")
    parser.add_argument("--gc-after-trial", choices=("on", "off"), default="on",
                        help="study.optimize(gc_after_trial=...): on as memctl's worker does; "
                             "off saves ~0.2 CPU s a trial where CPUs are few")
    parser.add_argument("--param-writes", nargs="+", choices=("each", "batched"),
                        default=["each", "batched"],
                        help="PostgreSQL: a transaction per suggested parameter (Optuna's) or "
                             "one per trial (memctl's storage)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    bucket = args.bucket or (1000 if args.trials >= 4000 else max(1, args.trials // 4))
    pg_url = args.pg_url if args.pg_url is not None else _pg_url_from_env()

    tmp = Path(tempfile.mkdtemp(prefix="memctl-bench-storage-"))
    cfg = load_config(None, [f"run_dir={tmp}", f"search.population_size={args.population_size}"])
    log = sys.stderr if args.json else sys.stdout
    print(f"{os.cpu_count()} CPUs; T={args.trials}; workers {args.workers}; bucket {bucket}; "
          f"population {args.population_size}; heartbeat {cfg.search.heartbeat_s} s", file=log)
    summaries = []
    for storage in args.storage:
        url = ""
        if storage == "pg":
            if not pg_url:
                print("pg: no URL (--pg-url or MEMCTL_TEST_PG_URL): skipped", file=log)
                continue
            url = pg_url
            print(f"pg: {mask_url(url)}", file=log)
        # Parameter batching is a feature of memctl's PostgreSQL storage.
        writes_options = args.param_writes if storage == "pg" else ["-"]
        for sampler, param_writes in itertools.product(args.sampler, writes_options):
            for workers in ([1] if storage == "memory" else args.workers):
                if storage == "journal":
                    url = str(tmp / f"{sampler}-{workers}-{uuid.uuid4().hex[:8]}.journal")
                name = f"{storage}-{sampler}-{param_writes}-{workers}w.prof"
                prof = str(Path(args.profile) / name) if args.profile else None
                if prof:
                    Path(args.profile).mkdir(parents=True, exist_ok=True)
                run = {"storage": storage, "sampler": sampler, "url": url,
                       "param_writes": param_writes,
                       "trials": args.trials, "bucket": bucket, "profile": prof,
                       "gc_after_trial": args.gc_after_trial == "on",
                       "population_size": args.population_size}
                print(f"running {storage} / {sampler} / {param_writes} / {workers} workers ...",
                      file=log, flush=True)
                summary = _run(run, cfg, workers)
                summaries.append(summary)
                if not args.json:
                    _print(summary)
                    sys.stdout.flush()
                if prof:
                    print(f"\nprofile of worker 0: {prof}", file=log)
                    pstats.Stats(prof, stream=log).sort_stats("cumulative").print_stats(30)
    if args.json:
        json.dump({"cpus": os.cpu_count(), "trials": args.trials, "bucket": bucket,
                   "runs": summaries}, sys.stdout, indent=1)
        print()
    else:
        _print_overview(summaries)
    for f in tmp.glob("*.journal*"):
        f.unlink()
    for d in sorted(tmp.rglob("*"), reverse=True):
        if d.is_dir():
            d.rmdir()
    tmp.rmdir()


if __name__ == "__main__":
    main()
