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

from memctl.config import Config
from memctl.data.cache import CacheReader
from memctl.runs.fine_tune import fine_tune
from memctl.runs.scoring import score
from memctl.train.loop import StepCallback, TrainResult

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
