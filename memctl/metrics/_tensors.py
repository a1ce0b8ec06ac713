"""Small conversions shared by the metric modules."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

ArrayLike = np.ndarray | torch.Tensor


def as_tensor(x: ArrayLike) -> torch.Tensor:
    """A tensor view of ``x`` (numpy arrays are wrapped without copying)."""
    if isinstance(x, torch.Tensor):
        return x.detach()
    return torch.from_numpy(np.asarray(x))


def as_float_tensor(x: ArrayLike) -> torch.Tensor:
    """Float tensor; float64 stays float64 so callers can ask for exact maths."""
    t = as_tensor(x)
    if t.dtype == torch.uint8:
        return t.float() / 255.0
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def as_numpy64(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def module_device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def module_dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Evaluation mode and no autograd for the block, then restore each module's mode.

    Metrics must never run with dropout (the official code measured d_mem with CFG dropout on).
    """
    previous = [m.training for m in modules]
    try:
        for m in modules:
            m.eval()
        with torch.no_grad():
            yield
    finally:
        for m, was_training in zip(modules, previous, strict=True):
            m.train(was_training)
