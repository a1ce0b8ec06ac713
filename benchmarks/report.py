"""`memctl report` and `memctl status` on a large study: does the report stay fast?

    .venv/bin/python benchmarks/report.py                  # 10,000 trials against 100
    .venv/bin/python benchmarks/report.py --trials 2000 --runs 3

Builds two finished sqlite studies as `memctl search` leaves them (config and reference
point recorded, masks, trainable counts, some failed trials), the large one and a small
reference, then times each command as a user runs it (`python -m memctl ...`, a subprocess,
median of --runs after one warm-up). The small study runs in the same session, so the ratio
large / small is what to read on a noisy machine. Also prints, in process, the study read
(one get_trials per study) and the rendering separately. Prints results, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_study(run_dir: Path, n: int) -> None:
    import optuna
    from optuna.distributions import CategoricalDistribution

    from memctl.config import Config
    from memctl.search.space import params_from_mask
    from memctl.search.study import create_study, default_storage_url

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = Config(run_dir=str(run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    study = create_study(cfg, default_storage_url(cfg))
    for key, value in {"config": cfg.to_dict(), "n_bits": 16,
                       "block_names": [f"block{i}" for i in range(16)],
                       "hv_reference": cfg.search.hv_reference}.items():
        study.set_user_attr(key, value)
    rng = random.Random(0)
    trials = []
    for i in range(n):
        bits = [rng.randint(0, 1) for _ in range(16)]
        params = params_from_mask(bits)
        failed = i % 50 == 49
        trials.append(optuna.trial.create_trial(
            params=params, distributions={k: CategoricalDistribution([0, 1]) for k in params},
            values=None if failed else [5 * rng.random(), 5 * rng.random()],
            state=optuna.trial.TrialState.FAIL if failed else optuna.trial.TrialState.COMPLETE,
            user_attrs={"mask": "".join(map(str, bits)), "trainable": 25_000 * sum(bits),
                        "total": 3_277_988, "node": f"node{i % 8}"}))
    study.add_trials(trials)


def timed(argv: list[str], runs: int, cwd: Path) -> float:
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)}: exit {proc.returncode}\n{proc.stderr}")
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def in_process(run_dir: Path, out: Path) -> tuple[float, float]:
    """Seconds to read the study into rows, and to render every report file."""
    from memctl.config import Config
    from memctl.report.collect import collect
    from memctl.report.render import write_report
    from memctl.search.study import default_storage_url, load_studies

    cfg = Config(run_dir=str(run_dir))
    start = time.perf_counter()
    snap = collect(load_studies(cfg, default_storage_url(cfg)), default_storage_url(cfg))
    read = time.perf_counter() - start
    start = time.perf_counter()
    write_report(snap, out)
    return read, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=100, help="trials of the reference study")
    parser.add_argument("--runs", type=int, default=3, help="runs per case (median)")
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for n in (args.small, args.trials):
            cwd = Path(tmp) / str(n)
            start = time.perf_counter()
            make_study(cwd / "memctl-runs", n)
            build = time.perf_counter() - start
            report = timed([py, "-m", "memctl", "report"], args.runs, cwd)
            status = timed([py, "-m", "memctl", "status"], args.runs, cwd)
            read, render = in_process(cwd / "memctl-runs", cwd / "out")
            rows.append((n, build, report, status, read, render))
        print(f"median of {args.runs} runs, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"{'trials':>7} {'build s':>8} {'report s':>9} {'status s':>9} "
              f"{'read s':>7} {'render s':>9}")
        for n, build, report, status, read, render in rows:
            print(f"{n:>7} {build:8.2f} {report:9.2f} {status:9.2f} {read:7.2f} {render:9.2f}")
        (_, _, r0, s0, _, _), (n, _, r1, s1, _, _) = rows
        print(f"ratio {n} / {args.small} trials: report {r1 / r0:.2f}x, status {s1 / s0:.2f}x")


if __name__ == "__main__":
    main()
