"""Attention tuning: q, k, v and out projections (weights and biases) of attn1 and attn2."""

from __future__ import annotations

from memctl.peft._method import Method, Params
from memctl.peft._target import join
from memctl.peft.methods._layers import attention_projections, is_attention, is_transformer_model


class Attention(Method):
    name = "attention"

    def block(self, unet, target) -> Params:
        params: Params = {}
        for path, m in target.modules(unet):
            if is_attention(m):
                for proj_path, proj in attention_projections(m).items():
                    for n, p in proj.named_parameters():
                        params[join(path, proj_path, n)] = p
        return params

    def unmasked(self, unet, target) -> Params:
        # The official code masks only names containing "attn": ff and norms always train.
        inside = len(target.path) + 1
        return {n: p for n, p in target.parameters(unet) if not n[inside:].startswith("attn")}

    def extra(self, unet, target) -> Params:
        return dict(target.parameters(unet))  # an `always` group trains fully

    def rest(self, unet, target) -> Params:
        # The official attention tuning trains whole Transformer2DModels, never resnets.
        params: Params = {}
        for path, m in target.modules(unet):
            if is_transformer_model(m):
                sub = type(target)(path, "rest", exclude=target.exclude)
                params.update(sub.parameters(unet))
        return params


METHOD = Attention
