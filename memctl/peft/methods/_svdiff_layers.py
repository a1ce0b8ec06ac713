"""SV-DIFF layers: W' = U diag(ReLU(s + delta)) V^T around a frozen Linear, Conv2d or norm.

Training applies the factors instead of building W': y = ((x V) * s') U^T + b (a conv becomes
an r-filter conv and a 1x1 conv), which costs about one extra matmul, not an out x in x r
weight rebuild per call. Without gradients (evaluation) W' is built once per delta value.
U, s, V^T are fp32 non-persistent buffers computed lazily on first use, so applying the method
(and counting its parameters) needs no SVD.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from memctl.peft import _svd_cache

MODES = ("factorised", "rebuild")  # rebuild: W' every call, as the official code (reference)


class _Cached(nn.Module):
    """Keeps an eval-time weight per delta version; factor buffers stay fp32 on .to(dtype)."""

    _FACTORS: tuple[str, ...] = ()

    def _apply(self, fn, recurse=True):
        saved = {k: self._buffers.pop(k) for k in self._FACTORS}
        super()._apply(fn, recurse)
        device = self.base.weight.device
        for k, t in saved.items():
            self._buffers[k] = None if t is None else t.to(device)
        self._eval_weight = None
        return self

    def _weight(self) -> torch.Tensor:
        """W' for a call: cached when no gradient can flow to delta."""
        if torch.is_grad_enabled() and self.delta.requires_grad:
            self._eval_weight = None
            return self.updated_weight()
        version = (self.delta._version, self.delta.data_ptr())
        if self._eval_weight is None or self._eval_version != version:
            with torch.no_grad():
                self._eval_weight = self.updated_weight()
            self._eval_version = version
        return self._eval_weight


class SVDiffLayer(_Cached):
    """Linear or Conv2d (weight reshaped out x in*k*k)."""

    _FACTORS = ("U", "S", "Vh")

    def __init__(self, base: nn.Linear | nn.Conv2d, cache: Path | None, mode: str) -> None:
        super().__init__()
        self.base = base
        self.cache = cache
        self.mode = mode
        out = base.weight.shape[0]
        rank = min(out, base.weight[0].numel())
        w = base.weight
        self.delta = nn.Parameter(torch.zeros(rank, device=w.device, dtype=w.dtype))
        for k in self._FACTORS:
            self.register_buffer(k, None, persistent=False)
        self._eval_weight = None
        self._eval_version = None
        # Grouped or non-zero-padded convs cannot be split into two plain convs.
        self._factorisable = not isinstance(base, nn.Conv2d) or (
            base.groups == 1 and base.padding_mode == "zeros"
        )

    def _factors(self):
        if self.U is None:
            with torch.no_grad(), torch.autocast(self.base.weight.device.type, enabled=False):
                w2d = self.base.weight.reshape(self.base.weight.shape[0], -1)
                self.U, self.S, self.Vh = _svd_cache.svd(w2d, self.cache)
        return self.U, self.S, self.Vh

    def scales(self) -> torch.Tensor:
        return F.relu(self._factors()[1] + self.delta.float())

    def updated_weight(self) -> torch.Tensor:
        u, _, vh = self._factors()
        w = (u * self.scales()) @ vh
        return w.reshape(self.base.weight.shape).to(self.base.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grad = torch.is_grad_enabled() and self.delta.requires_grad
        if grad and self.mode == "factorised" and self._factorisable:
            return self._factorised(x)
        w = self._weight() if self.mode == "factorised" or not grad else self.updated_weight()
        if isinstance(self.base, nn.Conv2d):
            return self.base._conv_forward(x, w, self.base.bias)
        return F.linear(x, w, self.base.bias)

    def _factorised(self, x: torch.Tensor) -> torch.Tensor:
        u, _, vh = self._factors()
        s = self.scales().to(x.dtype)
        u, vh = u.to(x.dtype), vh.to(x.dtype)
        b = self.base
        if isinstance(b, nn.Linear):
            return F.linear(F.linear(x, vh) * s, u, b.bias)
        h = F.conv2d(x, vh.reshape(-1, *b.weight.shape[1:]), None, b.stride, b.padding, b.dilation)
        return F.conv2d(h * s[:, None, None], u[:, :, None, None], b.bias)

    @torch.no_grad()
    def merged(self) -> nn.Module:
        self.base.weight.copy_(self.updated_weight())
        return self.base


class SVDiffNorm(_Cached):
    """LayerNorm or GroupNorm: the affine weight is 1 x d, so its SVD is ||w|| and w/||w||;
    one scalar delta rescales it: w' = w * ReLU(||w|| + delta) / ||w||."""

    def __init__(self, base: nn.LayerNorm | nn.GroupNorm) -> None:
        super().__init__()
        self.base = base
        w = base.weight
        self.delta = nn.Parameter(torch.zeros(1, device=w.device, dtype=w.dtype))
        self._eval_weight = None
        self._eval_version = None

    def updated_weight(self) -> torch.Tensor:
        w = self.base.weight
        s = w.detach().float().norm()
        return (w.float() * (F.relu(s + self.delta.float()) / s)).to(w.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, w = self.base, self._weight()
        if isinstance(b, nn.GroupNorm):
            return F.group_norm(x, b.num_groups, w, b.bias, b.eps)
        return F.layer_norm(x, b.normalized_shape, w, b.bias, b.eps)

    @torch.no_grad()
    def merged(self) -> nn.Module:
        self.base.weight.copy_(self.updated_weight())
        return self.base
