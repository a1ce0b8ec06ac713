"""Metric kernels against the naive versions they replace, side by side, in one run.

    .venv/bin/python benchmarks/metrics.py          # paper-scale sizes (minutes on 2 cores)
    .venv/bin/python benchmarks/metrics.py --quick  # small sizes, for a smoke run

1. Extraction attack on one prompt's generations at 224 px: vectorised all-pairs tiled l2 +
   maximal cliques, against the official code's per-pair Python loop (timed on a subset of
   pairs and extrapolated to all unordered pairs; the official loop visits ordered pairs, so
   its real cost is twice that).
2. AMD, fake x train x 1024-d features: wall time and peak extra memory, against the size of
   the full distance matrix a one-shot implementation would allocate.
3. d_mem collected during sampling versus sampling and a separate d_mem pass, on a small
   SD-shaped U-Net (the embedded model's size).

Prints ratios, asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import networkx as nx
import torch

from memctl.metrics import SamplingSettings, amd, d_mem, generate
from memctl.metrics.extraction import largest_clique
from memctl.metrics.tiled import tiled_l2


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak_rss() -> bool:
    # Writing 5 to clear_refs resets VmHWM (Linux >= 4.0), so the peak covers one step only.
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def official_pair_distance(img1: torch.Tensor, img2: torch.Tensor) -> float:
    """The official per-pair tile distance (unfold into 16 tiles, max of tile l2)."""
    size = img1.shape[1] // 4
    t1 = img1.unfold(1, size, size).unfold(2, size, size).permute(1, 2, 0, 3, 4).reshape(16, -1)
    t2 = img2.unfold(1, size, size).unfold(2, size, size).permute(1, 2, 0, 3, 4).reshape(16, -1)
    return torch.norm(t1 - t2, dim=-1).max().item()


def bench_extraction(n: int, loop_pairs: int) -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(n, 3, 224, 224, generator=gen)
    # A memorised cluster: 30 near-copies of one image.
    images[:30] = (images[0] + 0.01 * torch.randn(30, 3, 224, 224, generator=gen)).clamp(0, 1)

    start = time.perf_counter()
    dist = tiled_l2(images, images)
    t_dist = time.perf_counter() - start
    start = time.perf_counter()
    clique = largest_clique((dist < 0.15).numpy())
    t_clique = time.perf_counter() - start
    vectorised = t_dist + t_clique

    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)][:: max(1, n * n // 2 // loop_pairs)]
    pairs = pairs[:loop_pairs]
    start = time.perf_counter()
    for i, j in pairs:
        official_pair_distance(images[i], images[j])
    per_pair = (time.perf_counter() - start) / len(pairs)
    all_pairs = n * (n - 1) // 2
    loop = per_pair * all_pairs

    print(f"[extraction] {n} generations, 3x224x224, 4x4 tiles")
    print(f"  vectorised tiled l2 (all {n}x{n})     {t_dist:8.2f} s")
    print(f"  maximal cliques (networkx)           {t_clique:8.2f} s   largest = {len(clique)}")
    print(
        f"  per-pair loop: {per_pair * 1e3:.3f} ms/pair on {len(pairs)} pairs"
        f" -> {loop:8.1f} s for {all_pairs} pairs (extrapolated)"
    )
    print(f"  speed-up (loop / vectorised+cliques)  {loop / vectorised:8.1f} x")
    components = max(
        len(c)
        for c in nx.connected_components(nx.from_numpy_array((dist < 0.15).numpy().astype(int)))
    )
    print(f"  (largest connected component, for reference: {components})")


def bench_amd(n_fake: int, n_train: int, dim: int, chunk: int) -> None:
    gen = torch.Generator().manual_seed(1)
    fake = torch.randn(n_fake, dim, generator=gen)
    train = torch.randn(n_train, dim, generator=gen)
    tracked = _reset_peak_rss()
    before = _rss_kib("VmRSS")
    start = time.perf_counter()
    value = amd(fake, train, chunk=chunk)
    seconds = time.perf_counter() - start
    peak_extra = (_rss_kib("VmHWM") - before) / 1024
    inputs = (fake.numel() + train.numel()) * 4 / 2**20
    full = n_fake * n_train * 4 / 2**20
    gflop = 2 * n_fake * n_train * dim / 1e9
    print(f"[amd] {n_fake} x {n_train} x {dim}-d, chunk {chunk}")
    print(
        f"  time                                 {seconds:8.2f} s   ({gflop / seconds:.0f} GFLOP/s)"
    )
    if tracked:
        print(f"  peak extra memory (VmHWM - RSS)      {peak_extra:8.0f} MiB")
    print(f"  inputs                               {inputs:8.0f} MiB")
    print(f"  one-shot distance matrix would need  {full:8.0f} MiB")
    print(f"  value                                {value:8.4f}")


def _tiny_models() -> tuple[torch.nn.Module, torch.nn.Module, object]:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=16,
        block_out_channels=(32, 64, 64, 64),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=64,
        attention_head_dim=8,
        norm_num_groups=16,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    )
    scheduler = DDPMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    )
    return unet, vae, scheduler


def bench_dmem(prompts: int, generations: int, steps: int) -> None:
    unet, vae, scheduler = _tiny_models()
    gen = torch.Generator().manual_seed(2)
    embeds = torch.randn(prompts, 8, 64, generator=gen)
    empty = torch.randn(1, 8, 64, generator=gen)
    rows = embeds.repeat_interleave(generations, dim=0)
    kw = SamplingSettings(num_inference_steps=steps, seed=0, batch_size=8)
    # Warm-up: first calls pay one-off kernel selection and lazy imports.
    generate(unet, vae, scheduler, rows[:2], empty, SamplingSettings(num_inference_steps=1),
             return_dmem=True)

    start = time.perf_counter()
    shared = generate(unet, vae, scheduler, rows, empty, kw, return_dmem=True)
    t_shared = time.perf_counter() - start

    start = time.perf_counter()
    generate(unet, vae, scheduler, rows, empty, kw)
    value = d_mem(unet, embeds, empty, scheduler, kw, generations=generations)
    t_separate = time.perf_counter() - start

    print(f"[d_mem] {prompts} prompts x {generations} generations, {steps} DDIM steps, 64 px")
    print(f"  sampling with d_mem collected        {t_shared:8.2f} s   d_mem = {shared.dmem:.4f}")
    print(f"  sampling, then separate d_mem pass   {t_separate:8.2f} s   d_mem = {value:.4f}")
    print(f"  ratio (separate / shared)            {t_separate / t_shared:8.2f} x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    if args.quick:
        bench_extraction(n=100, loop_pairs=200)
        print()
        bench_amd(n_fake=1000, n_train=10_000, dim=1024, chunk=4096)
        print()
        bench_dmem(prompts=2, generations=2, steps=5)
    else:
        bench_extraction(n=500, loop_pairs=2000)
        print()
        bench_amd(n_fake=10_000, n_train=100_000, dim=1024, chunk=4096)
        print()
        bench_dmem(prompts=4, generations=4, steps=50)


if __name__ == "__main__":
    main()
