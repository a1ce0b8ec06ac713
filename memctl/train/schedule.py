"""Learning-rate factor per optimizer step: linear warmup, then constant or cosine decay."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from memctl.config import TrainConfig


def lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.lr_schedule == "cosine":
            progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return factor


def make_scheduler(cfg: TrainConfig) -> Callable[[torch.optim.Optimizer],
                                                  torch.optim.lr_scheduler.LambdaLR]:
    """A factory, because DeepSpeed builds the optimizer the scheduler must wrap."""
    return lambda optimizer: torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
