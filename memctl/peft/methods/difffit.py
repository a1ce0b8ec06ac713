"""DiffFit as in the official MemControl code: per BasicTransformerBlock residual scales
gamma_attn1, gamma_attn2, gamma_ff and per attention gamma_q, gamma_k, gamma_v, gamma_out
(all init 1), plus the block's biases and norm parameters.

Scales are applied by forward hooks, so module names stay those of diffusers; merge folds
each scale into the rows of the Linear whose output it multiplies.
"""

from __future__ import annotations

import torch
from torch import nn

from memctl.errors import UserError
from memctl.peft._method import Method, Params
from memctl.peft._target import Target, get, join
from memctl.peft.methods._layers import NORMS, is_attention, is_transformer_block

_ATTN = {"gamma_q": "to_q", "gamma_k": "to_k", "gamma_v": "to_v", "gamma_out": "to_out.0"}
_BRANCHES = {"gamma_attn1": "attn1", "gamma_attn2": "attn2", "gamma_ff": "ff"}


class DiffFit(Method):
    name = "difffit"

    def __init__(self) -> None:
        self._hooks: list = []
        self._scaled: list[tuple[nn.Module, str, nn.Linear]] = []  # (owner, gamma, layer)

    def block(self, unet, target) -> Params:
        return {**self._gammas(unet, target), **self.unmasked(unet, target)}

    def unmasked(self, unet, target) -> Params:
        """Biases and norms: what the official code trains whatever the mask."""
        return _bias_and_norm(unet, target)

    extra = unmasked

    def rest(self, unet, target) -> Params:
        params = _bias_and_norm(unet, target)
        for path, m in list(target.modules(unet)):
            if is_transformer_block(m):
                params.update(self._gammas(unet, Target(path, "block")))
        return params

    def _gammas(self, unet, target: Target) -> Params:
        block = get(unet, target.path)
        children = target.children or tuple(n for n, _ in block.named_children())
        params: Params = {}
        for gamma, child in _BRANCHES.items():
            if child not in children or getattr(block, child, None) is None:
                continue
            branch = getattr(block, child)
            out = _last_linear(branch)
            if is_attention(branch):
                if getattr(branch, "residual_connection", False):
                    raise UserError(
                        f"difffit: {join(target.path, child)} adds its input to its "
                        "output; its residual scale cannot be merged"
                    )
                for g, proj in _ATTN.items():
                    layer = branch.get_submodule(proj)
                    params[join(target.path, child, g)] = self._scale(branch, g, layer)
            params[join(target.path, gamma)] = self._scale(block, gamma, out, hook_on=branch)
        return params

    def _scale(self, owner: nn.Module, gamma: str, layer: nn.Linear, hook_on=None) -> nn.Parameter:
        """Register `gamma` on `owner`, scaling the output of `hook_on` (default `layer`);
        at merge it folds into `layer`'s output rows."""
        if gamma in owner._parameters:
            return owner._parameters[gamma]
        w = layer.weight
        p = nn.Parameter(torch.ones(w.shape[0], device=w.device, dtype=w.dtype))
        owner.register_parameter(gamma, p)
        hooked = hook_on if hook_on is not None else layer
        self._hooks.append(hooked.register_forward_hook(_Scale(owner, gamma)))
        self._scaled.append((owner, gamma, layer))
        return p

    @torch.no_grad()
    def merge(self, unet) -> None:
        for h in self._hooks:
            h.remove()
        for owner, gamma, layer in self._scaled:
            g = owner._parameters.pop(gamma)
            layer.weight.mul_(g[:, None])
            if layer.bias is not None:
                layer.bias.mul_(g)
        self._hooks, self._scaled = [], []


class _Scale:
    """Forward hook multiplying a module's output by `owner.<gamma>`. It holds the owner, not
    the tensor, so a deep copy of the model scales by the copy's own gamma."""

    def __init__(self, owner: nn.Module, gamma: str) -> None:
        self.owner, self.gamma = owner, gamma

    def __call__(self, module, inputs, output):
        return output * getattr(self.owner, self.gamma)


def _bias_and_norm(unet, target: Target) -> Params:
    params: Params = {}
    for path, m in target.modules(unet):
        for n, p in m.named_parameters(recurse=False):
            if n == "bias" or isinstance(m, NORMS):
                params[join(path, n)] = p
    return params


def _last_linear(branch: nn.Module) -> nn.Linear:
    """The Linear that produces a branch's output (attention: to_out[0]; ff: net[-1])."""
    return [m for m in branch.modules() if isinstance(m, nn.Linear)][-1]


METHOD = DiffFit
