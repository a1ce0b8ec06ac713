"""bf16 training with fp32 masters: frozen weights go to bf16, and come back bit-exact.

Only the trained tensors need fp32 masters; frozen weights are read, never updated, so bf16
copies halve their memory. An fp32 copy of every untrained tensor is stashed on the host so
the model leaves training exactly as it came in, apart from what was trained.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


class FrozenStash:
    """Host fp32 copies of a module's untrained floating tensors (parameters and buffers)."""

    def __init__(self, module: nn.Module, trainable: Sequence[nn.Parameter]) -> None:
        ids = {id(p) for p in trainable}
        tensors = [*module.named_parameters(), *module.named_buffers()]
        self.saved = {n: t.detach().to("cpu", copy=True) for n, t in tensors
                      if id(t) not in ids and t.is_floating_point()}

    def restore(self, module: nn.Module, trainable: Sequence[nn.Parameter],
                master: Callable[[nn.Parameter], torch.Tensor]) -> None:
        """Puts back the stashed tensors and sets each trained one to its fp32 master."""
        with torch.no_grad():
            for p in trainable:
                p.data = master(p).detach().float().clone()
            tensors = dict([*module.named_parameters(), *module.named_buffers()])
            for name, saved in self.saved.items():
                t = tensors[name]
                t.data = saved.to(t.device)


def cast_frozen(module: nn.Module, trainable: Sequence[nn.Parameter],
                dtype: torch.dtype) -> None:
    """Frozen parameters to `dtype`; trained parameters and buffers stay fp32 (autocast mixes)."""
    ids = {id(p) for p in trainable}
    with torch.no_grad():
        for p in module.parameters():
            if id(p) not in ids and p.is_floating_point():
                p.data = p.data.to(dtype)
