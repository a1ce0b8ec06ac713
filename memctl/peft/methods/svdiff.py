"""SV-DIFF (Han et al. 2023): train a shift of the singular values of every Linear, Conv2d
and norm weight in the target, W' = U diag(ReLU(s + delta)) V^T, delta initialised to 0.

Options: cache_dir (SVD disk cache; default $MEMCTL_SVD_CACHE, else none), lr_1d_ratio
(norm scalars' lr relative to the matrices', 1e-3 as in the SV-DIFF reference code),
mode ("auto": per call the cheaper of factorised and rebuilt W'; "factorised"; "rebuild" = W'
every call, as the official code, for reference only).
"""

from __future__ import annotations

from torch import nn

from memctl.errors import UserError
from memctl.peft._method import Method, Params
from memctl.peft._target import join, replace
from memctl.peft.methods import _svd_cache
from memctl.peft.methods._layers import NORMS
from memctl.peft.methods._svdiff_layers import MODES, SVDiffLayer, SVDiffNorm, _Cached


class SVDiff(Method):
    name = "svdiff"

    def __init__(self, cache_dir=None, lr_1d_ratio: float = 1e-3, mode: str = "auto"):
        if mode not in MODES:
            raise UserError(f"svdiff mode: unknown {mode!r}; choose from {', '.join(MODES)}")
        self.cache = _svd_cache.cache_dir(cache_dir)
        self.lr_1d_ratio = lr_1d_ratio
        self.mode = mode

    def block(self, unet, target) -> Params:
        params: Params = {}
        for path, m in list(target.modules(unet, stop=lambda m: isinstance(m, _Cached))):
            layer = self._wrap(unet, path, m)
            if layer is not None:
                params[join(path, "delta")] = layer.delta
        return params

    extra = block  # every layer the method knows, wherever it is

    def _wrap(self, unet, path: str, m: nn.Module) -> _Cached | None:
        if isinstance(m, _Cached):
            return m
        if isinstance(m, nn.Linear | nn.Conv2d):
            layer = SVDiffLayer(m, self.cache, self.mode)
        elif isinstance(m, NORMS) and m.weight is not None:
            layer = SVDiffNorm(m)
        else:
            return None
        replace(unet, path, layer)
        return layer

    def param_groups(self, params: Params, lr: float) -> list[dict]:
        norms = [p for p in params.values() if p.numel() == 1]
        mats = [p for p in params.values() if p.numel() > 1]
        return [
            {"params": mats, "lr": lr},
            {"params": norms, "lr": lr * self.lr_1d_ratio, "weight_decay": 0.0},
        ]

    def merge(self, unet) -> None:
        for path, m in list(unet.named_modules()):
            if isinstance(m, _Cached):
                replace(unet, path, m.merged())


METHOD = SVDiff
