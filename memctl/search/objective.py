"""One trial: masked fine-tune on the proxy set, then score memorisation and quality.

    mask -> peft.apply -> train.loop (cache only) -> d_mem on D_mem, FID on validation

A trial never re-encodes images or prompts: training reads the HDF5 cache, FID compares
against real-image statistics computed once per split and extractor.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from memctl import peft
from memctl.config import Config
from memctl.data.cache import CacheReader, load_image
from memctl.metrics import d_mem_noised, frechet_from_stats, gaussian_stats
from memctl.metrics.features import FeatureExtractor, get_extractor
from memctl.metrics.reference_stats import ReferenceStats, reference_stats
from memctl.metrics.sampling import generate
from memctl.models.load import Components, load_components
from memctl.train.loop import StepCallback, TrainResult, train
from memctl.train.mitigations import prompt_captions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialContext:
    """Everything a worker needs, resolved by the head (picklable, no open handles)."""

    model_dir: str
    cache_path: str
    train_indices: list[int]
    dmem_indices: list[int]
    n_bits: int
    block_names: list[str] = field(default_factory=list)


@dataclass
class Scores:
    d_mem: float
    fid: float
    n_fid: int
    trainable: int
    total: int
    train: TrainResult

    def as_dict(self) -> dict:
        return {"d_mem": self.d_mem, "fid": self.fid, "n_fid": self.n_fid,
                "trainable": self.trainable, "total": self.total,
                "trainable_percent": 100.0 * self.trainable / max(1, self.total),
                "train_seconds": round(self.train.seconds, 2),
                "final_loss": self.train.losses[-1] if self.train.losses else None,
                "resumed_from": getattr(self.train, "resumed_from", 0)}


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
            dmem_indices: Sequence[int]) -> float:
    """d_mem (noised-data variant) over the D_mem pairs, averaged over noise draws."""
    dm = reader.load(dmem_indices)
    latents = dm.latent_mean * comps.vae.config.scaling_factor  # latent_dist.mean (Wen et al.)
    cond = dm.prompt_embeds[dm.prompt_index]
    return float(np.mean([
        d_mem_noised(comps.unet, latents, cond, dm.empty_embed, comps.scheduler,
                     timesteps=tuple(cfg.eval.dmem_timesteps), seed=cfg.eval.seed + s,
                     batch_size=cfg.eval.batch_size)
        for s in range(cfg.eval.dmem_noise_seeds)
    ]))


def generate_for_split(comps: Components, reader: CacheReader, cfg: Config,
                       split: str) -> tuple[torch.Tensor, list[int]]:
    """One image per prompt of the split's fixed FID subset: (images in [0, 1], cache rows)."""
    idx = fid_indices(reader, split, cfg.eval.fid_samples, cfg.eval.seed)
    ev = reader.load(idx)
    gen = generate(comps.unet, comps.vae, comps.scheduler, ev.prompt_embeds[ev.prompt_index],
                   ev.empty_embed, num_inference_steps=cfg.eval.num_inference_steps,
                   guidance_scale=cfg.eval.guidance_scale, seed=cfg.eval.seed,
                   batch_size=cfg.eval.batch_size,
                   latent_shape=tuple(ev.latent_mean.shape[1:]), sampler=cfg.eval.sampler)
    return gen.images, idx


def fid_against(images: torch.Tensor, reader: CacheReader, cfg: Config, split: str,
                extractor: FeatureExtractor) -> float:
    mu_r, sigma_r, _ = real_stats(reader, split, extractor, cfg.model.resolution)
    mu_f, sigma_f = gaussian_stats(extractor(images))
    return float(frechet_from_stats(mu_f, sigma_f, mu_r, sigma_r))


def score(comps: Components, reader: CacheReader, cfg: Config, dmem_indices: Sequence[int],
          split: str = "val") -> tuple[float, float, int]:
    """(d_mem on the D_mem pairs, FID of generations for `split` prompts, n used for FID)."""
    d_mem = dmem_of(comps, reader, cfg, dmem_indices)
    extractor = get_extractor(cfg.eval.extractor, cfg.eval.extractor_weights or None)
    images, idx = generate_for_split(comps, reader, cfg, split)
    return d_mem, fid_against(images, reader, cfg, split, extractor), len(idx)


@dataclass
class FineTuned:
    comps: Components
    adapter: peft.Adapter
    result: TrainResult
    counts: dict


def fine_tune(cfg: Config, model_dir: str, bits: Sequence[int], reader: CacheReader,
              indices: Sequence[int], out_dir: Path, on_step: StepCallback | None = None,
              should_stop: Callable[[], bool] | None = None) -> FineTuned:
    """Fine-tunes a freshly loaded U-Net restricted to `bits` on the given cache rows."""
    torch.manual_seed(cfg.train.seed)
    rwa = cfg.train.mitigation == "rwa"  # the only part of training that encodes text
    comps = load_components(model_dir, text=rwa)
    adapter = peft.apply(comps.unet, cfg.peft.method, list(bits), cfg.peft.space,
                         list(cfg.peft.always))
    data = reader.load(indices)
    result = train(comps.unet, adapter.param_groups(cfg.train.lr), data, comps.scheduler,
                   cfg.train, scaling_factor=comps.vae.config.scaling_factor, out_dir=out_dir,
                   on_step=on_step, tokenizer=comps.tokenizer, text_encoder=comps.text_encoder,
                   captions=prompt_captions(data, reader.captions) if rwa else None,
                   should_stop=should_stop)
    return FineTuned(comps, adapter, result, adapter.count())


def run_trial(cfg: Config, ctx: TrialContext, bits: Sequence[int], out_dir: Path,
              on_step: StepCallback | None = None,
              should_stop: Callable[[], bool] | None = None) -> Scores:
    """One search trial: fine-tune on the proxy set, score on D_mem and validation."""
    start = time.perf_counter()
    reader = CacheReader(ctx.cache_path)
    tuned = fine_tune(cfg, ctx.model_dir, bits, reader, ctx.train_indices, out_dir, on_step,
                      should_stop)
    d_mem, fid, n_fid = score(tuned.comps, reader, cfg, ctx.dmem_indices, split="val")
    scores = Scores(d_mem, fid, n_fid, tuned.counts["trainable"], tuned.counts["total"],
                    tuned.result)
    summary = {"mask": "".join(map(str, bits)), **scores.as_dict(),
               "seconds": round(time.perf_counter() - start, 2)}
    (out_dir / "scores.json").write_text(json.dumps(summary, indent=2))
    return scores
