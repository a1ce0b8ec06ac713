"""MemControl's trade-off on the embedded testbed: a small-scale Table 1 and Figure 3.

    .venv/bin/python benchmarks/tradeoff.py --quick --json out.json   # 1 seed, 450-step retrains
    .venv/bin/python benchmarks/tradeoff.py --json out.json           # 3 seeds, mean +- sd

Per seed, in a fresh run directory, through memctl's own CLI as a user runs it:

    memctl search                       NSGA-II over attention masks on the proxy set
    memctl retrain --best --evaluate    the pick, retrained on the training split
    memctl baselines                    freeze, full FT, vanilla PEFT, + RWA, + threshold

then reads every run's evaluation.json (test split: FID, AMD, d_mem, the extraction attack on
the D_mem prompts) and the study, prints a Table-1-style table and writes the Figure-3 scatter
(trials, Pareto front, pick, retrained models) next to the JSON. The testbed's sanity figures
come first: the VAE's reconstruction error on the training images, and the smallest tiled
distance between two distinct training images, both against the extraction threshold.

Expected shape (the paper's Table 1): full FT memorises most (lowest AMD, most extracted),
freeze extracts none, the MemControl pick extracts fewer than full FT and than vanilla PEFT at
an FID no worse than 1.2x the best baseline. Prints what it measures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (model, mitigation, run folder relative to the run dir; None: the retrained pick)
# The searched method (the tiny config's attention) is the vanilla PEFT.
MODELS = [("freeze", "none", "baselines/freeze"), ("full", "none", "baselines/full"),
          ("peft", "none", "baselines/attention"), ("peft", "rwa", "baselines/attention-rwa"),
          ("peft", "threshold", "baselines/attention-threshold"), ("memcontrol", "none", None)]
# --quick: 5 trials and 450-step retrains instead of 600, to stay within 10 minutes on
# 2 cores (full FT on seed 0 still replays 3 of its 4 D_mem images at 450; 4 at 600).
QUICK = ["search.trials=5", "search.population_size=3", "train.retrain_steps=450"]
DEFAULT = ["search.trials=12", "search.population_size=4"]


def _memctl(args: list[str], log) -> dict:
    exe = Path(sys.executable).with_name("memctl")
    cmd = [str(exe) if exe.exists() else "memctl", *args, "--json"]
    print("$ " + " ".join(cmd), file=log, flush=True)
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {done.returncode}")
    return json.loads(done.stdout)


def sanity(run_dir: Path, overrides: list[str]) -> dict:
    """VAE reconstruction and distinct-pair distance on the training split, at model size."""
    import torch

    from memctl.config import load_config
    from memctl.data.images import load_image
    from memctl.metrics.sanity import min_distinct_tiled_l2, vae_reconstruction_l2
    from memctl.models.load import load_components
    from memctl.workspace import open_workspace

    cfg = load_config(None, [f"run_dir={run_dir}", *overrides])  # the seed's own splits
    ws = open_workspace(cfg)
    reader = ws.reader()
    rows = reader.usable("train")
    paths = reader.paths(rows)
    images = (torch.stack([load_image(p, cfg.model.resolution) for p in paths]) + 1) / 2
    vae = load_components(ws.model_dir, text=False).vae
    recon = vae_reconstruction_l2(vae, images)
    return {"vae_recon_l2": float(recon.mean()), "vae_recon_l2_max": float(recon.max()),
            "min_distinct_train_tiled_l2": min_distinct_tiled_l2(images, list(paths),
                                                                 cfg.eval.tile_grid),
            "extraction_threshold": cfg.eval.extraction_threshold,
            "edge_threshold": cfg.eval.edge_threshold, "train_images": len(rows)}


def one_seed(seed: int, run_dir: Path, overrides: list[str], log) -> dict:
    base = [f"run_dir={run_dir}", f"train.seed={seed}", f"search.seed={seed}",
            f"data.split_seed={seed}", f"eval.seed={seed}", *overrides]
    t0 = time.monotonic()
    _memctl(["search", "--workers", "1", *base], log)
    pick = _memctl(["retrain", "--best", "--evaluate", *base], log)
    _memctl(["baselines", "--methods", "freeze,full", "--mitigations", "none", *base], log)
    _memctl(["baselines", "--methods", "peft", "--mitigations", "none,rwa,threshold", *base], log)
    status = _memctl(["status", *base], log)
    trials = _memctl(["report", *base], log)
    rows = []
    for model, mitigation, folder in MODELS:
        path = Path(pick["out_dir"]) if folder is None else run_dir / folder
        ev = json.loads((path / "evaluation.json").read_text())
        rows.append({
            "model": model, "method": ev["method"], "mitigation": mitigation,
            "fid": ev["fid_test"], "amd": ev["amd"],
            "extracted": ev["extraction"]["n_extracted"],
            "extracted_images": ev["extraction"].get("n_extracted_images", 0),
            "dmem_size": ev["extraction"]["prompts"], "d_mem": ev["d_mem"],
            "trainable": ev["trainable"], "mask": ev["mask"]})
    with open(trials["trials.json"]) as fh:
        trial_rows = json.load(fh)["trials"]
    return {"seed": seed, "rows": rows, "front_size": len(status["front"]),
            "picked_trial": status["picked"], "trials": trial_rows,
            "sanity": sanity(run_dir, base), "seconds": round(time.monotonic() - t0, 1)}


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def combine(runs: list[dict]) -> dict:
    """Seed-averaged rows (means in the fields, sds under `sd`), worst-case sanity."""
    rows = []
    for i, first in enumerate(runs[0]["rows"]):
        row = dict(first)
        row["sd"] = {}
        for key in ("fid", "amd", "extracted", "extracted_images", "d_mem"):
            row[key], row["sd"][key] = _mean_sd([float(r["rows"][i][key]) for r in runs])
        # the pick's mask differs by seed: its mean size, and every seed's mask
        row["trainable"] = round(statistics.fmean(r["rows"][i]["trainable"] for r in runs))
        row["mask"] = [r["rows"][i]["mask"] for r in runs]
        rows.append(row)
    sanity = {
        "vae_recon_l2": max(r["sanity"]["vae_recon_l2"] for r in runs),
        "min_distinct_train_tiled_l2": min(r["sanity"]["min_distinct_train_tiled_l2"]
                                           for r in runs),
        "extraction_threshold": runs[0]["sanity"]["extraction_threshold"],
    }
    return {"rows": rows, "front_size": min(r["front_size"] for r in runs), "sanity": sanity,
            "seeds": [r["seed"] for r in runs], "runs": runs}


def table(result: dict) -> str:
    n = len(result["seeds"])
    head = ("| model | method | mitigation | FID | AMD | extracted prompts | extracted images "
            "| d_mem | trainable |")
    lines = [head, "|" + "---|" * 9]
    def cell(r: dict, key: str, fmt: str) -> str:
        return f"{r[key]:{fmt}} ± {r['sd'][key]:{fmt}}" if n > 1 else f"{r[key]:{fmt}}"

    for r in result["rows"]:
        lines.append(f"| {r['model']} | {r['method']} | {r['mitigation']} "
                     f"| {cell(r, 'fid', '.2f')} | {cell(r, 'amd', '.4f')} "
                     f"| {cell(r, 'extracted', '.1f')} / {r['dmem_size']} "
                     f"| {cell(r, 'extracted_images', '.1f')} "
                     f"| {cell(r, 'd_mem', '.3f')} | {r['trainable']:,} |")
    s = result["sanity"]
    lines.append("")
    lines.append(f"seeds {result['seeds']}; smallest Pareto front {result['front_size']}; "
                 f"VAE reconstruction l2 {s['vae_recon_l2']:.4f} (worst seed); nearest distinct "
                 f"training images {s['min_distinct_train_tiled_l2']:.3f} tiled l2; extraction "
                 f"threshold {s['extraction_threshold']}")
    return "\n".join(lines)


def figure(result: dict, path: Path) -> None:
    """Figure 3: every trial, the front and the pick (validation), and the retrained models
    (test split) in the same (d_mem, FID) plane, from the first seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = result["runs"][0]
    done = [t for t in run["trials"] if t["state"] == "COMPLETE"]
    front = sorted((t for t in done if t["pareto"]), key=lambda t: t["d_mem"])
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    ax.scatter([t["d_mem"] for t in done], [t["fid"] for t in done], s=18, c="#9aa5b1",
               label=f"trials (n={len(done)}, validation)")
    ax.plot([t["d_mem"] for t in front], [t["fid"] for t in front], "-o", c="#d1495b", ms=5,
            label=f"Pareto front (n={len(front)})")
    for t in done:
        if t["picked"]:
            ax.scatter([t["d_mem"]], [t["fid"]], s=200, marker="*", c="#edae49",
                       edgecolors="k", zorder=5, label=f"pick: trial {t['number']}")
    markers = {"freeze": "s", "full": "D", "peft": "^", "memcontrol": "P"}
    for r in run["rows"]:
        name = r["model"] + ("" if r["mitigation"] == "none" else f"+{r['mitigation']}")
        ax.scatter([r["d_mem"]], [r["fid"]], marker=markers[r["model"]], s=60,
                   edgecolors="k", zorder=6,
                   label=f"{name} (test, {r['extracted']}/{r['dmem_size']} extracted)")
    ax.set_xlabel("d_mem (memorisation, lower is better)")
    ax.set_ylabel("FID (lower is better)")
    ax.set_title(f"MemControl on the embedded testbed (seed {run['seed']})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one seed, fewer trials, 450-step retrains")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: 0 1 2 (quick: 0)")
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--figure", type=Path,
                        help="Figure-3 scatter (default: beside --json, else ./tradeoff.png)")
    parser.add_argument("--work-dir", type=Path, help="keep the run directories here")
    parser.add_argument("overrides", nargs="*", help="SECTION.FIELD=VALUE for every command")
    args = parser.parse_args(argv)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    overrides = (QUICK if args.quick else DEFAULT) + list(args.overrides)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="memctl-tradeoff-"))
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o700)
    log = sys.stderr
    start = time.monotonic()
    runs = []
    for seed in seeds:
        print(f"--- seed {seed} ---", file=log, flush=True)
        runs.append(one_seed(seed, work / f"seed{seed}", overrides, log))
    result = combine(runs)
    result["seconds"] = round(time.monotonic() - start, 1)
    result["command"] = " ".join(["benchmarks/tradeoff.py", *(argv or sys.argv[1:])])
    fig_path = args.figure or (args.json.with_suffix(".png") if args.json else
                               Path("tradeoff.png"))
    figure(result, fig_path)
    print(table(result))
    print(f"\n{len(seeds)} seed(s) in {result['seconds']:.0f} s; figure {fig_path}; "
          f"runs under {work}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
