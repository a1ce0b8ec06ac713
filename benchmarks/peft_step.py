"""SV-DIFF training-step cost on the SD v1.5-size U-Net, side by side in one run:

    .venv/bin/python benchmarks/peft_step.py            # 224 px, batch 1 (minutes on 2 cores)
    .venv/bin/python benchmarks/peft_step.py --quick    # tiny U-Net, for a smoke run
    python benchmarks/peft_step.py --device cuda --batch 8 --bf16   # on a GPU

1. attention tuning (q, k, v, out of all 16 blocks),
2. SV-DIFF on all 16 blocks as memctl runs it (mode auto: factorised, or W' rebuilt where the
   token count makes that cheaper),
3. with --factorised: SV-DIFF always factorised,
4. SV-DIFF on all 16 blocks, rebuilding every W' = U @ diag(ReLU(s + delta)) @ V^T on every
   call, as the official code writes it (the official code does so for every layer of the
   U-Net; here only the same layers as 2.).

A step is forward + MSE loss + backward + AdamW step on random latents at 28 x 28 (224 px)
with a 77-token context. Weights are randomly initialised from a fixed seed, so the SVDs
(only of the layers inside the 16 blocks) are computed once and then read from the disk
cache ($MEMCTL_SVD_CACHE, default ./memctl-runs/svd-cache). Prints ratios (targets: SV-DIFF
<= 1.3x attention, >= 3x faster than rebuild), asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import torch
from diffusers import UNet2DConditionModel

from memctl.models.arch import build_unet
from memctl.peft import apply

RUNS = [  # label, method, options
    ("attention", "attention", {}),
    ("svdiff", "svdiff", {}),
    ("svdiff-factorised", "svdiff", {"mode": "factorised"}),
    ("svdiff-rebuild", "svdiff", {"mode": "rebuild"}),
]


def _unet(quick: bool) -> UNet2DConditionModel:
    torch.manual_seed(0)  # same weights every run: the SVD cache keys on them
    if quick:
        return UNet2DConditionModel(
            block_out_channels=(32, 32, 64, 64),
            cross_attention_dim=32,
            norm_num_groups=8,
            sample_size=8,
        )
    return build_unet("sd15")


def _step_times(unet, method: str, steps: int, args, **options) -> list[float]:
    unet.to(args.device)
    adapter = apply(unet, method, [1] * 16, **options)
    opt = torch.optim.AdamW(adapter.param_groups(lr=1e-3))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 4, args.latent, args.latent, generator=g).to(args.device)
    ctx = torch.randn(args.batch, 77, unet.config.cross_attention_dim, generator=g)
    ctx = ctx.to(args.device)
    t = torch.randint(0, 1000, (args.batch,), generator=g).to(args.device)
    device_type = torch.device(args.device).type
    times = []
    for i in range(args.warmup + steps):
        _sync(args.device)
        start = time.perf_counter()
        with torch.autocast(device_type, torch.bfloat16, enabled=args.bf16):
            loss = unet(x, t, encoder_hidden_states=ctx).sample.float().square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(args.device)
        if i >= args.warmup:  # the first step also decomposes (or loads) the SVDs
            times.append(time.perf_counter() - start)
    return times


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--latent", type=int, default=28, help="latent side (224 px / 8)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rebuild-steps", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--factorised", action="store_true", help="also time mode factorised")
    args = parser.parse_args()
    if args.quick:
        args.latent = 8
    cache = os.environ.get("MEMCTL_SVD_CACHE", "memctl-runs/svd-cache")

    base = _unet(args.quick)
    n = sum(p.numel() for p in base.parameters())
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(
        f"U-Net {n:,} params, batch {args.batch}, latent {args.latent}, {where}, "
        f"{torch.get_num_threads()} threads, bf16 autocast {args.bf16}"
    )
    median = {}
    for label, method, options in RUNS:
        if label == "svdiff-factorised" and not args.factorised:
            continue
        steps = args.rebuild_steps if label == "svdiff-rebuild" else args.steps
        if method == "svdiff":
            options = {**options, "cache_dir": cache}
        times = _step_times(copy.deepcopy(base), method, steps, args, **options)
        median[label] = statistics.median(times)
        each = ", ".join(f"{s:.3f}" for s in times)
        print(f"{label:>17}: {median[label]:8.3f} s/step, median of {len(times)} ({each})")
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    ratio = median["svdiff"] / median["attention"]
    speedup = median["svdiff-rebuild"] / median["svdiff"]
    print(f"svdiff / attention: {ratio:.2f}x (target <= 1.3)")
    print(f"rebuild / svdiff:   {speedup:.2f}x (target >= 3)")


if __name__ == "__main__":
    main()
