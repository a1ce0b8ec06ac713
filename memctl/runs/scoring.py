"""Scoring a fine-tuned model, shared by search trials and runs: d_mem and FID.

    d_mem on the D_mem pairs (the variant search.dmem names: noised data or the sampling
    trajectory), FID of generations for a split's prompts against real-image statistics
    computed once per split and extractor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from memctl.config import Config, EvalConfig
from memctl.data.cache import CacheReader
from memctl.data.images import load_image
from memctl.errors import UserError
from memctl.metrics import d_mem, d_mem_noised, frechet_from_stats, gaussian_stats
from memctl.metrics.features import FeatureExtractor, get_extractor
from memctl.metrics.reference_stats import ReferenceStats, reference_stats
from memctl.metrics.sampling import SamplingSettings, generate
from memctl.models.load import Components


def sampling_settings(ev: EvalConfig, **changes) -> SamplingSettings:
    """The evaluation's sampling (steps, guidance, seed, batch size, sampler) plus changes."""
    return dataclasses.replace(
        SamplingSettings(num_inference_steps=ev.num_inference_steps,
                         guidance_scale=ev.guidance_scale, seed=ev.seed,
                         batch_size=ev.batch_size, sampler=ev.sampler), **changes)


def fid_indices(reader: CacheReader, split: str, n: int, seed: int) -> list[int]:
    """A fixed, seeded subset of a split's images used for FID prompts and real features."""
    pool = reader.usable(split)
    if not pool:
        return []
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(pool, size=min(n, len(pool)), replace=False))


def split_stats(reader: CacheReader, split: str, extractor: FeatureExtractor, resolution: int,
                keep_features: bool = False) -> ReferenceStats:
    """Real-image feature statistics of a split, computed once and cached next to the cache.

    Uses every usable image of the split (not just the FID prompts) so the reference
    Gaussian is as good as the data allows; keyed by the cache's fingerprint. AMD needs the
    per-image features too (`keep_features`).
    """
    idx = reader.usable(split)
    if not idx:
        raise ValueError(f"split {split!r} is empty in {reader.path}")
    paths = reader.paths(idx)

    def batches():
        for start in range(0, len(paths), 64):
            chunk = paths[start:start + 64]
            yield (torch.stack([load_image(p, resolution) for p in chunk]) + 1) / 2

    return reference_stats(reader.path, split, extractor, str(reader.attrs["fingerprint"]),
                           batches, keep_features=keep_features)


def real_stats(reader: CacheReader, split: str, extractor: FeatureExtractor,
               resolution: int) -> tuple[np.ndarray, np.ndarray, int]:
    stats = split_stats(reader, split, extractor, resolution)
    return stats.mu, stats.sigma, stats.n


def dmem_of(comps: Components, reader: CacheReader, cfg: Config,
            dmem_indices: Sequence[int], variant: str | None = None) -> float:
    """d_mem over the D_mem pairs, by `variant` (default: cfg.search.dmem).

    noised: each pair's clean latent noised to eval.dmem_timesteps, averaged over timesteps,
    pairs and eval.dmem_noise_seeds noise draws. trajectory (Wen et al.): one seeded sampling
    trajectory per pair prompted by its caption, with the evaluation's sampling settings
    (pair k starts from seed eval.seed + k), averaged over steps and pairs.
    """
    variant = variant or cfg.search.dmem
    dm = reader.load(dmem_indices)
    cond = dm.prompt_embeds[dm.prompt_index]
    if variant == "trajectory":
        return d_mem(comps.unet, cond, dm.empty_embed, comps.scheduler,
                     sampling_settings(cfg.eval, latent_shape=tuple(dm.latent_mean.shape[1:])),
                     generations=1)
    if variant != "noised":
        raise ValueError(f"d_mem variant must be trajectory or noised, got {variant!r}")
    latents = dm.latent_mean * comps.vae.config.scaling_factor  # latent_dist.mean (Wen et al.)
    return float(np.mean([
        d_mem_noised(comps.unet, latents, cond, dm.empty_embed, comps.scheduler,
                     timesteps=tuple(cfg.eval.dmem_timesteps), seed=cfg.eval.seed + s,
                     batch_size=cfg.eval.batch_size)
        for s in range(cfg.eval.dmem_noise_seeds)
    ]))


def require_split(reader: CacheReader, cfg: Config, split: str, needed_by: str) -> None:
    """Fails before any training when `split` (scored by `needed_by`) holds no image."""
    if reader.usable(split):
        return
    how = ("the source's own split folders or file have none for it; "
           "data.official_split=false draws it from data.val_fraction/test_fraction"
           if cfg.data.official_split else
           f"raise data.{split}_fraction or add images")
    raise UserError(f"{reader.path}: the {split} split is empty ({needed_by} scores on it): "
                    f"{how}")


def generate_for_split(comps: Components, reader: CacheReader, cfg: Config,
                       split: str) -> tuple[torch.Tensor, list[int]]:
    """One image per prompt of the split's fixed FID subset: (images in [0, 1], cache rows)."""
    idx = fid_indices(reader, split, cfg.eval.fid_samples, cfg.eval.seed)
    ev = reader.load(idx)
    gen = generate(comps.unet, comps.vae, comps.scheduler, ev.prompt_embeds[ev.prompt_index],
                   ev.empty_embed,
                   sampling_settings(cfg.eval, latent_shape=tuple(ev.latent_mean.shape[1:])))
    return gen.images, idx


def fid_against(images: torch.Tensor, reader: CacheReader, cfg: Config, split: str,
                extractor: FeatureExtractor) -> float:
    mu_r, sigma_r, _ = real_stats(reader, split, extractor, cfg.model.resolution)
    mu_f, sigma_f = gaussian_stats(extractor(images))
    return float(frechet_from_stats(mu_f, sigma_f, mu_r, sigma_r))


def score(comps: Components, reader: CacheReader, cfg: Config, dmem_indices: Sequence[int],
          split: str = "val") -> tuple[float, float, int]:
    """(d_mem on the D_mem pairs by search.dmem, FID of generations for `split` prompts, n
    used for FID)."""
    value = dmem_of(comps, reader, cfg, dmem_indices)
    extractor = get_extractor(cfg.eval.extractor, cfg.eval.extractor_weights or None)
    images, idx = generate_for_split(comps, reader, cfg, split)
    return value, fid_against(images, reader, cfg, split, extractor), len(idx)
