"""SV-DIFF layers: W' = U diag(ReLU(s + delta)) V^T around a frozen Linear, Conv2d or norm.

Training applies the factors instead of building W': y = ((x V) * s') U^T + b (a conv becomes
an r-filter conv and a 1x1 conv), which costs about one extra matmul, not an out x in x r
weight rebuild per call. Mode "auto" (default) still rebuilds W' in a call whose token count
makes that fewer FLOPs (many tokens through a narrow layer; forward + backward counted).
Without gradients (evaluation) W' is built once per delta value.
U, s, V^T are fp32 non-persistent buffers computed lazily on first use, so applying the method
(and counting its parameters) needs no SVD.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from memctl.peft.methods import _svd_cache

# rebuild: W' = U @ diag(s') @ V^T every call, as the official code does (a reference only);
# auto: per call the cheaper of factorised and a broadcast rebuild (U * s') @ V^T.
MODES = ("auto", "factorised", "rebuild")


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
        self._cast = {}
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
        self._cast: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = {}
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

    def _factors_as(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """U and V^T in the compute dtype, cast once (not every call under autocast)."""
        u, _, vh = self._factors()
        if dtype == u.dtype:
            return u, vh
        if dtype not in self._cast:
            self._cast[dtype] = (u.to(dtype), vh.to(dtype))
        return self._cast[dtype]

    def _rebuild_cheaper(self, x: torch.Tensor) -> bool:
        """FLOPs of a training call: rebuild = W' + its backward (2 out r k) + the layer with
        a weight gradient (3 T out k); factorised = both factors, forward and back
        (2 T r (k + out))."""
        w, r = self.base.weight, self.delta.numel()
        out, k = w.shape[0], w[0].numel()
        tokens = x.numel() // w.shape[1]
        if isinstance(self.base, nn.Conv2d):
            tokens //= self.base.stride[0] * self.base.stride[1]
        return 2 * out * r * k + 3 * tokens * out * k < 2 * tokens * r * (k + out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.base
        if not (torch.is_grad_enabled() and self.delta.requires_grad):
            w = self._weight()  # evaluation: W' built once per delta value
        elif self.mode == "rebuild":  # the official formula, kept as the reference
            u, vh = self._factors_as(_compute_dtype(x))
            w = (u @ torch.diag(self.scales().to(u.dtype)) @ vh).reshape(b.weight.shape)
        elif not self._factorisable or self.mode == "auto" and self._rebuild_cheaper(x):
            u, vh = self._factors_as(_compute_dtype(x))
            w = ((u * self.scales().to(u.dtype)) @ vh).reshape(b.weight.shape)
        else:
            return self._factorised(x)
        if isinstance(b, nn.Conv2d):
            return b._conv_forward(x, w, b.bias)
        return F.linear(x, w, b.bias)

    def _factorised(self, x: torch.Tensor) -> torch.Tensor:
        u, vh = self._factors_as(_compute_dtype(x))
        s = self.scales().to(u.dtype)
        b = self.base
        if isinstance(b, nn.Linear):
            return F.linear(F.linear(x, vh) * s, u, b.bias)
        h = F.conv2d(x, vh.reshape(-1, *b.weight.shape[1:]), None, b.stride, b.padding, b.dilation)
        return F.conv2d(h * s[:, None, None], u[:, :, None, None], b.bias)

    @torch.no_grad()
    def merged(self) -> nn.Module:
        self.base.weight.copy_(self.updated_weight())
        return self.base


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


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
