"""One trial: masked fine-tune on the proxy set, then score memorisation and quality.

    mask -> peft.apply -> train.loop (cache only) -> d_mem on D_mem, FID on validation

A trial never re-encodes images or prompts: training reads the HDF5 cache, FID compares
against real-image statistics computed once per split and extractor.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from memctl import peft
from memctl.config import Config
from memctl.data.cache import CacheReader, load_image
from memctl.metrics import d_mem_noised, frechet_from_stats, gaussian_stats
from memctl.metrics.features import FeatureExtractor, get_extractor
from memctl.metrics.reference_stats import reference_stats
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


def real_stats(reader: CacheReader, split: str, extractor: FeatureExtractor,
               resolution: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and covariance of a split's real-image features, cached next to the data cache.

    Uses every usable image of the split (not just the FID prompts) so the reference
    Gaussian is as good as the data allows; keyed by the cache's fingerprint.
    """
    idx = reader.usable(split)
    if not idx:
        raise ValueError(f"split {split!r} is empty in {reader.path}")

    def batches():
        for start in range(0, len(idx), 64):
            paths = _paths(reader, idx[start:start + 64])
            yield (torch.stack([load_image(p, resolution) for p in paths]) + 1) / 2

    stats = reference_stats(reader.path, split, extractor, str(reader.attrs["fingerprint"]),
                            batches, keep_features=False)
    return stats.mu, stats.sigma, stats.n


def _paths(reader: CacheReader, indices: Sequence[int]) -> list[str]:
    import h5py

    with h5py.File(reader.path, "r", locking=False) as f:
        raw = f["path"][sorted(indices)]
    return [p.decode() if isinstance(p, bytes) else p for p in raw]


def score(comps: Components, reader: CacheReader, cfg: Config, dmem_indices: Sequence[int],
          split: str = "val") -> tuple[float, float, int]:
    """(d_mem on the D_mem pairs, FID of generations for `split` prompts, n used for FID)."""
    unet, vae, scheduler = comps.unet, comps.vae, comps.scheduler
    scale = vae.config.scaling_factor
    dm = reader.load(dmem_indices)
    latents = dm.latent_mean * scale  # latent_dist.mean, as in Wen et al.
    cond = dm.prompt_embeds[dm.prompt_index]
    d_mem = float(np.mean([
        d_mem_noised(unet, latents, cond, dm.empty_embed, scheduler,
                     timesteps=tuple(cfg.eval.dmem_timesteps), seed=cfg.eval.seed + s,
                     batch_size=cfg.eval.batch_size)
        for s in range(cfg.eval.dmem_noise_seeds)
    ]))
    extractor = get_extractor(cfg.eval.extractor, cfg.eval.extractor_weights or None)
    mu_r, sigma_r, _ = real_stats(reader, split, extractor, cfg.model.resolution)
    idx = fid_indices(reader, split, cfg.eval.fid_samples, cfg.eval.seed)
    ev = reader.load(idx)
    shape = tuple(ev.latent_mean.shape[1:])
    gen = generate(unet, vae, scheduler, ev.prompt_embeds[ev.prompt_index], ev.empty_embed,
                   num_inference_steps=cfg.eval.num_inference_steps,
                   guidance_scale=cfg.eval.guidance_scale, seed=cfg.eval.seed,
                   batch_size=cfg.eval.batch_size, latent_shape=shape)
    mu_f, sigma_f = gaussian_stats(extractor(gen.images))
    return d_mem, float(frechet_from_stats(mu_f, sigma_f, mu_r, sigma_r)), len(idx)


@dataclass
class FineTuned:
    comps: Components
    adapter: peft.Adapter
    result: TrainResult
    counts: dict


def fine_tune(cfg: Config, model_dir: str, bits: Sequence[int], reader: CacheReader,
              indices: Sequence[int], out_dir: Path, on_step: StepCallback | None = None,
              ) -> FineTuned:
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
                   captions=prompt_captions(data, reader.captions) if rwa else None)
    return FineTuned(comps, adapter, result, adapter.count())


def run_trial(cfg: Config, ctx: TrialContext, bits: Sequence[int], out_dir: Path,
              on_step: StepCallback | None = None) -> Scores:
    """One search trial: fine-tune on the proxy set, score on D_mem and validation."""
    start = time.perf_counter()
    reader = CacheReader(ctx.cache_path)
    tuned = fine_tune(cfg, ctx.model_dir, bits, reader, ctx.train_indices, out_dir, on_step)
    d_mem, fid, n_fid = score(tuned.comps, reader, cfg, ctx.dmem_indices, split="val")
    scores = Scores(d_mem, fid, n_fid, tuned.counts["trainable"], tuned.counts["total"],
                    tuned.result)
    summary = {"mask": "".join(map(str, bits)), **scores.as_dict(),
               "seconds": round(time.perf_counter() - start, 2)}
    (out_dir / "scores.json").write_text(json.dumps(summary, indent=2))
    return scores
