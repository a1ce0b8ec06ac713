"""Fine-tune a freshly loaded U-Net restricted to a mask: one search trial's or run's training."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from memctl import peft
from memctl.config import Config
from memctl.data.cache import CacheReader
from memctl.models.load import Components, load_components
from memctl.train.loop import StepCallback, TrainResult, train
from memctl.train.mitigations.rwa import prompt_captions


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
    train_cfg = cfg.train.for_method(cfg.peft.method)
    result = train(comps.unet, adapter.param_groups(train_cfg.lr), data, comps.scheduler,
                   train_cfg, scaling_factor=comps.vae.config.scaling_factor, out_dir=out_dir,
                   on_step=on_step, tokenizer=comps.tokenizer, text_encoder=comps.text_encoder,
                   captions=prompt_captions(data, reader.captions) if rwa else None,
                   should_stop=should_stop)
    return FineTuned(comps, adapter, result, adapter.count())
