"""Training-step cost through memctl's training engine, side by side in one run:

    .venv/bin/python benchmarks/train_step.py                 # SD v1.5 U-Net, 224 px, CPU, batch 1
    .venv/bin/python benchmarks/train_step.py --quick         # tiny U-Net smoke run
    python benchmarks/train_step.py --batch 8 --precision bf16   # on a GPU: adds images/s and MFU

Variants: full fine-tuning, attention (q, k, v, out of all 16 blocks), SV-DIFF on all 16
blocks (when memctl.peft has it), and a small mask (attention in the last up block only).
Each runs in its own process (so peak memory is its own) through memctl.train.train: the
same loop, engine, precision and optimizer a search trial uses, on a synthetic cache at
latent 28 (224 px) with a 77-token context. Reports median step time over the measured
steps, peak memory (CPU: peak RSS, and above the built model; GPU: peak allocated), FLOPs of
one step counted with FlopCounterMode, and ratios to attention; on a GPU also images/s and
MFU against --peak-tflops (reference: ~790 bf16 TFLOP/s measured on an H100). reference.md §6:
forward 139.5 GFLOP at 224 px; train step / forward = 2.98 full, 2.12 attention, 1.03-2.0
small masks.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

FORWARD_GFLOP_224 = 139.5  # reference.md §6, batch 1
VARIANTS = [  # label, method, bits (blocks16)
    ("full", "full", [1] * 16),
    ("attention", "attention", [1] * 16),
    ("svdiff", "svdiff", [1] * 16),
    ("small-mask", "attention", [0] * 15 + [1]),
]


def _unet(quick: bool):
    from diffusers import UNet2DConditionModel

    from memctl.models.arch import build_unet

    torch.manual_seed(0)  # fixed weights: SV-DIFF's SVD disk cache keys on them
    if quick:
        return UNet2DConditionModel(block_out_channels=(32, 32, 64, 64), cross_attention_dim=32,
                                    norm_num_groups=8, sample_size=8)
    return build_unet("sd15")


def _data(batch: int, latent: int, dim: int):
    from memctl.data.cache import CachedSet

    g = torch.Generator().manual_seed(0)
    n = max(4, batch)
    return CachedSet(torch.randn(n, 4, latent, latent, generator=g),
                     torch.full((n, 4, latent, latent), -6.0),
                     torch.arange(n) % 2, torch.randn(2, 77, dim, generator=g),
                     torch.randn(1, 77, dim, generator=g))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _variant(label: str, method: str, bits: list[int], args: argparse.Namespace, out) -> None:
    """One variant in this (child) process; sends its figures through `out`."""
    from diffusers import DDPMScheduler
    from torch.utils.flop_counter import FlopCounterMode

    from memctl import peft
    from memctl.config import TrainConfig
    from memctl.train.loop import train

    torch.set_num_threads(args.threads or torch.get_num_threads())
    unet = _unet(args.quick)
    cuda = torch.cuda.is_available() and not args.cpu
    built_mb = _rss_mb()
    dev = torch.device("cuda" if cuda else "cpu")
    unet.to(dev)  # SV-DIFF's SVDs then run on the GPU too
    options = {"cache_dir": os.environ.get("MEMCTL_SVD_CACHE", "memctl-runs/svd-cache")} \
        if method == "svdiff" else {}
    data = _data(args.batch, args.latent, unet.config.cross_attention_dim)
    fwd_flops = 0.0
    if not args.no_flops:  # the plain U-Net's forward: what reference.md's ratios divide by
        x = data.latent_mean[:args.batch].to(dev)
        ctx = data.prompt_embeds[data.prompt_index[:args.batch]].to(dev)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            unet(x, torch.full((args.batch,), 500, device=dev), ctx)
        fwd_flops = counter.get_total_flops()
    adapter = peft.apply(unet, method, bits, **options)
    trainable = sum(p.numel() for p in adapter.trainable_parameters())
    sched = DDPMScheduler()
    lr = 1e-3 if method == "svdiff" else 1e-5
    cfg = TrainConfig(steps=args.warmup + args.steps, batch_size=args.batch, lr=lr,
                      engine=args.engine, precision=args.precision, zero_stage=args.zero_stage,
                      gradient_checkpointing=args.checkpointing, log_every=1 << 20)
    stamps: list[float] = []

    def on_step(step: int, total: int, loss: float) -> None:
        if cuda:
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    train(unet, adapter.param_groups(lr), data, sched, cfg, scaling_factor=0.18215,
          on_step=on_step)
    times = [b - a for a, b in zip([start, *stamps[:-1]], stamps, strict=True)][args.warmup:]
    peak = (torch.cuda.max_memory_allocated() / 2**20) if cuda else _rss_mb()
    flops = 0.0
    if not args.no_flops:  # one more step, counted
        one = TrainConfig(**{**cfg.__dict__, "steps": 1})
        with FlopCounterMode(display=False) as counter:
            train(unet, adapter.param_groups(lr), data, sched, one, scaling_factor=0.18215)
        flops = counter.get_total_flops()
    out.send({"label": label, "times": times, "peak_mb": peak, "built_mb": built_mb,
              "trainable": trainable, "flops": flops, "fwd_flops": fwd_flops, "cuda": cuda,
              "device": torch.cuda.get_device_name() if cuda else "cpu",
              "threads": torch.get_num_threads()})


def _run_isolated(label: str, method: str, bits: list[int], args) -> dict | None:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_variant, args=(label, method, bits, args, child))
    proc.start()
    child.close()
    try:
        return parent.recv()
    except EOFError:  # the child died (e.g. out of memory): say so, continue with the rest
        proc.join()
        print(f"{label:>11}: failed (exit code {proc.exitcode})", flush=True)
        return None
    finally:
        proc.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny U-Net, latent 8")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--latent", type=int, default=28, help="latent side (224 px / 8)")
    parser.add_argument("--steps", type=int, default=2, help="measured steps per variant")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--engine", default="torch", choices=("torch", "deepspeed"))
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--zero-stage", type=int, default=0)
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing")
    parser.add_argument("--variants", default=",".join(v[0] for v in VARIANTS))
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--cpu", action="store_true", help="stay on the CPU with a GPU present")
    parser.add_argument("--no-flops", action="store_true", help="skip the FLOP-counted step")
    parser.add_argument("--peak-tflops", type=float, default=790.0,
                        help="accelerator peak for MFU (H100 bf16 measured: ~790)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.latent = 8

    from memctl.peft import METHODS

    wanted = args.variants.split(",")
    rows = []
    for label, method, bits in VARIANTS:
        if label not in wanted:
            continue
        if method not in METHODS:
            print(f"{label:>11}: skipped (memctl.peft has no {method})", flush=True)
            continue
        r = _run_isolated(label, method, bits, args)
        if r is None:
            continue
        r["median_s"] = statistics.median(r["times"])
        rows.append(r)
        print(f"{label:>11}: {r['median_s']:8.3f} s/step  peak {r['peak_mb']:9.0f} MiB  "
              f"trainable {r['trainable']:>11,}  ({', '.join(f'{t:.3f}' for t in r['times'])})",
              flush=True)
    if not rows:
        sys.exit("no variant ran")
    head = rows[0]
    print(f"\n{'SD v1.5' if not args.quick else 'tiny'} U-Net, batch {args.batch}, latent "
          f"{args.latent}, {head['device']}, {head['threads']} threads, engine {args.engine}, "
          f"{args.precision}, checkpointing {args.checkpointing}")
    base = next((r for r in rows if r["label"] == "attention"), head)
    print(f"{'variant':>11} {'s/step':>8} {'x attn':>7} {'peak MiB':>9} {'x attn':>7} "
          f"{'GFLOP':>8} {'x fwd':>6} {'GFLOP/s':>8}" + (f" {'img/s':>8} {'MFU':>6}"
                                                          if head["cuda"] else ""))
    for r in rows:
        extra = r["peak_mb"] - (0 if r["cuda"] else r["built_mb"])
        base_extra = base["peak_mb"] - (0 if base["cuda"] else base["built_mb"])
        gflop = r["flops"] / 1e9
        line = (f"{r['label']:>11} {r['median_s']:8.3f} {r['median_s'] / base['median_s']:7.2f} "
                f"{r['peak_mb']:9.0f} {extra / max(base_extra, 1e-9):7.2f} {gflop:8.1f} "
                f"{r['flops'] / max(r['fwd_flops'], 1):6.2f} {gflop / r['median_s']:8.1f}")
        if r["cuda"]:
            mfu = gflop / r["median_s"] / (args.peak_tflops * 1e3)
            line += f" {args.batch / r['median_s']:8.1f} {100 * mfu:5.1f}%"
        print(line)
    fwd = head["fwd_flops"] / 1e9
    print(f"forward {fwd:.1f} GFLOP counted (reference.md §6: {FORWARD_GFLOP_224} at 224 px, "
          "batch 1). x fwd: counted step / counted forward; §6 expects 2.98 full, 2.12 "
          "attention, ~1.03 small mask (up_blocks.3 only). CPU memory ratio: peak above the "
          "built model.")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                         "rows": rows}, indent=2, default=str))


if __name__ == "__main__":
    main()
