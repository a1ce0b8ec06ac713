"""Start-up wall time of the CLI: how long before a command answers.

    .venv/bin/python benchmarks/startup.py             # 5 runs each, median
    .venv/bin/python benchmarks/startup.py --runs 9

Each case runs as its own subprocess (`python -m memctl ...`, the venv's interpreter), so the
time includes interpreter start and every import, as a user sees it:

    help          memctl --help
    bad config    memctl search search.trials=0       (rejected: exit 2, one line)
    status        memctl status on a small sqlite study (8 complete trials, made here first)
    import torch  python -c "import torch"             (reference: what one heavy import costs)

The reference runs in the same session so a loaded machine shows as a slow `import torch`
rather than as slow memctl. Goals: bad config <= 0.5 s, status <= 1 s. Prints results,
asserts nothing.
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


def _make_study(run_dir: Path) -> None:
    """A small finished study as `memctl search` leaves it: config recorded, 8 trials."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    from memctl.config import Config
    from memctl.search.space import params_from_mask
    from memctl.search.study import create_study, default_storage_url

    cfg = Config(run_dir=str(run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    study = create_study(cfg, default_storage_url(cfg))
    study.set_user_attr("config", cfg.to_dict())
    study.set_user_attr("n_bits", 16)
    study.set_user_attr("block_names", [f"block{i}" for i in range(16)])
    rng = random.Random(0)
    for _ in range(8):
        bits = [rng.randint(0, 1) for _ in range(16)]
        params = params_from_mask(bits)
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: CategoricalDistribution([0, 1]) for k in params},
            values=[rng.random(), 100 * rng.random()],
            user_attrs={"mask": "".join(map(str, bits))}))


def _time(argv: list[str], runs: int, cwd: Path, ok: tuple[int, ...]) -> float:
    """Median wall seconds of `argv` over `runs` runs (after one warm-up for the page cache)."""
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if proc.returncode not in ok:
            raise SystemExit(f"{' '.join(argv)}: exit {proc.returncode}\n{proc.stderr}")
        if i:
            times.append(elapsed)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="Runs per case (median).")
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        _make_study(cwd / "memctl-runs")
        cases = [
            ("memctl --help", [py, "-m", "memctl", "--help"], (0,), None),
            ("bad config (search search.trials=0)",
             [py, "-m", "memctl", "search", "search.trials=0"], (2,), 0.5),
            ("memctl status (sqlite, 8 trials)", [py, "-m", "memctl", "status"], (0,), 1.0),
            ("reference: python -c 'import torch'", [py, "-c", "import torch"], (0,), None),
        ]
        print(f"median of {args.runs} runs, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.2f}")
        for name, argv, ok, goal in cases:
            seconds = _time(argv, args.runs, cwd, ok)
            target = f"  (goal <= {goal:.1f} s)" if goal else ""
            print(f"{name:<40} {seconds:6.2f} s{target}")


if __name__ == "__main__":
    main()
