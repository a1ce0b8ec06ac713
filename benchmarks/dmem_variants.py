"""The search's two d_mem objectives (search.dmem) on the same fine-tuned models: do they rank
masks alike, and what does each cost?

    .venv/bin/python benchmarks/dmem_variants.py --json out.json   # 16 masks, embedded default
    .venv/bin/python benchmarks/dmem_variants.py --quick           # 4 masks, 4 steps: smoke run
    .venv/bin/python benchmarks/dmem_variants.py --masks 32 eval.num_inference_steps=50

On the embedded default (plus any SECTION.FIELD=VALUE overrides), in a fresh run directory:
the all-ones mask and distinct random masks drawn from a fixed seed over the configured space,
each fine-tuned as a search trial is (memctl.runs.fine_tune.fine_tune on the proxy set,
train.steps), then both variants of memctl.runs.scoring.dmem_of timed on the resulting model:

    noised      the D_mem training latents noised to eval.dmem_timesteps
                (eval.dmem_noise_seeds draws each)
    trajectory  Wen et al.: along the sampling path from seeded noise, one per D_mem pair
                (eval.num_inference_steps, eval.sampler, eval.seed)

The variants run in alternating order from mask to mask, after one untimed warm-up of each on
the pretrained model. Prints each mask's values and seconds, the Spearman rank correlation
between the two over the masks with its p-value, and the cost ratio (median trajectory
seconds / median noised seconds). Asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

VARIANTS = ("noised", "trajectory")
QUICK = ["train.steps=4"]


def draw_masks(n: int, n_bits: int, seed: int) -> list[list[int]]:
    """The all-ones mask, then distinct random masks (none all-zeros) from `seed`."""
    masks = [[1] * n_bits]
    rng = np.random.default_rng(seed)
    for _ in range(100 * n):
        if len(masks) >= min(n, 2 ** n_bits - 1):
            break
        bits = [int(b) for b in rng.integers(0, 2, n_bits)]
        if any(bits) and bits not in masks:
            masks.append(bits)
    return masks


def timed_dmem(comps, reader, cfg, dmem_rows, order) -> dict[str, float]:
    from memctl.runs.scoring import dmem_of

    out: dict[str, float] = {}
    for variant in order:
        start = time.perf_counter()
        out[variant] = dmem_of(comps, reader, cfg, dmem_rows, variant)
        out[f"{variant}_s"] = time.perf_counter() - start
    return out


def run(n_masks: int, seed: int, overrides: list[str], work: Path, log) -> dict:
    from memctl.config import load_config
    from memctl.data.cache import CacheReader
    from memctl.models.load import load_components
    from memctl.runs.fine_tune import fine_tune
    from memctl.search.head import build_context
    from memctl.search.space import bits_str

    cfg = load_config(None, [f"run_dir={work}", *overrides])
    ctx = build_context(cfg)  # what the search head hands every worker
    reader = CacheReader(ctx.cache_path)
    masks = draw_masks(n_masks, ctx.n_bits, seed)
    print(f"{len(masks)} masks over {cfg.peft.method}/{cfg.peft.space} ({ctx.n_bits} bits), "
          f"{len(ctx.dmem_indices)} D_mem pairs, {cfg.train.steps} steps per trial",
          file=log, flush=True)
    pretrained = timed_dmem(load_components(ctx.model_dir, text=False), reader, cfg,
                            ctx.dmem_indices, VARIANTS)  # also the warm-up
    rows = []
    for k, bits in enumerate(masks):
        start = time.perf_counter()
        tuned = fine_tune(cfg, ctx.model_dir, bits, reader, ctx.train_indices,
                          work / "dmem-variants" / f"{k:03d}")
        train_s = time.perf_counter() - start
        order = VARIANTS if k % 2 == 0 else VARIANTS[::-1]
        row = {"mask": bits_str(bits), "trainable": tuned.counts["trainable"],
               "train_s": round(train_s, 2),
               **timed_dmem(tuned.comps, reader, cfg, ctx.dmem_indices, order)}
        rows.append(row)
        print(f"[{k + 1}/{len(masks)}] {row['mask']}  noised {row['noised']:.4f} "
              f"({row['noised_s']:.2f} s)  trajectory {row['trajectory']:.4f} "
              f"({row['trajectory_s']:.2f} s)", file=log, flush=True)
    return {"config": overrides, "mask_seed": seed, "n_bits": ctx.n_bits,
            "dmem_pairs": len(ctx.dmem_indices), "train_steps": cfg.train.steps,
            "eval": {k: v for k, v in dataclasses.asdict(cfg.eval).items()
                     if k in ("num_inference_steps", "sampler", "dmem_timesteps",
                              "dmem_noise_seeds", "seed", "batch_size")},
            "pretrained": pretrained, "masks": rows, **summary(rows)}


def summary(rows: list[dict]) -> dict:
    from scipy.stats import spearmanr

    noised = [r["noised"] for r in rows]
    trajectory = [r["trajectory"] for r in rows]
    rho, p = spearmanr(noised, trajectory) if len(rows) >= 3 else (float("nan"),) * 2
    noised_s = statistics.median(r["noised_s"] for r in rows)
    trajectory_s = statistics.median(r["trajectory_s"] for r in rows)
    return {"n": len(rows), "spearman_rho": float(rho), "spearman_p": float(p),
            "median_noised_s": noised_s, "median_trajectory_s": trajectory_s,
            "cost_ratio": trajectory_s / noised_s}


def table(result: dict) -> str:
    lines = ["| mask | trainable | d_mem noised | s | d_mem trajectory | s |",
             "|---|---|---|---|---|---|"]
    pre = result["pretrained"]
    lines.append(f"| pretrained | 0 | {pre['noised']:.4f} | {pre['noised_s']:.2f} "
                 f"| {pre['trajectory']:.4f} | {pre['trajectory_s']:.2f} |")
    for r in result["masks"]:
        lines.append(f"| {r['mask']} | {r['trainable']:,} | {r['noised']:.4f} "
                     f"| {r['noised_s']:.2f} | {r['trajectory']:.4f} "
                     f"| {r['trajectory_s']:.2f} |")
    ev = result["eval"]
    lines += [
        "",
        f"noised: timesteps {ev['dmem_timesteps']} x {ev['dmem_noise_seeds']} draw(s); "
        f"trajectory: {ev['num_inference_steps']} {ev['sampler']} steps; "
        f"{result['dmem_pairs']} D_mem pairs, {result['train_steps']} training steps per mask",
        f"Spearman rho (noised vs trajectory, n = {result['n']} masks): "
        f"{result['spearman_rho']:.3f}, p = {result['spearman_p']:.2g}",
        f"cost ratio (median trajectory s / median noised s): {result['cost_ratio']:.2f} "
        f"({result['median_trajectory_s']:.3f} / {result['median_noised_s']:.3f} s)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masks", type=int, default=16,
                        help="masks scored, the all-ones one included (default 16; quick: 4)")
    parser.add_argument("--quick", action="store_true",
                        help="4 masks, 4 training steps each: a smoke run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random masks")
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--work-dir", type=Path, help="keep the run directory here")
    parser.add_argument("overrides", nargs="*", help="SECTION.FIELD=VALUE config overrides")
    args = parser.parse_args(argv)
    n_masks = 4 if args.quick and args.masks == 16 else args.masks
    if n_masks < 1:
        parser.error("--masks must be >= 1")
    overrides = (QUICK if args.quick else []) + list(args.overrides)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="memctl-dmem-variants-"))
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o700)
    start = time.monotonic()
    result = run(n_masks, args.seed, overrides, work, sys.stderr)
    result["seconds"] = round(time.monotonic() - start, 1)
    result["command"] = " ".join(["benchmarks/dmem_variants.py",
                                  *(sys.argv[1:] if argv is None else argv)])
    print(table(result))
    print(f"\n{result['n']} masks in {result['seconds']:.0f} s; run directory {work}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
