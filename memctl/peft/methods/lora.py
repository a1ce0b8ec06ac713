"""LoRA on the q, k, v and out projections, through the `peft` library.

Options: rank (default 4), alpha (default = rank, i.e. scale 1), dropout (default 0).
In an `always` group LoRA goes on every Linear and Conv2d.
"""

from __future__ import annotations

from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn

from memctl.peft._method import Method, Params
from memctl.peft._target import get, join, replace
from memctl.peft.methods._layers import attention_projections, is_attention

_ADAPTER = "default"


class LoRA(Method):
    name = "lora"

    def __init__(self, rank: int = 4, alpha: float | None = None, dropout: float = 0.0):
        self.rank = int(rank)
        self.alpha = float(alpha) if alpha is not None else float(rank)
        self.dropout = float(dropout)

    def block(self, unet, target) -> Params:
        paths = [
            join(path, proj)
            for path, m in target.modules(unet, stop=_is_lora)
            if is_attention(m)
            for proj in attention_projections(m)
        ]
        return self._inject(unet, paths)

    rest = block  # paper13 remainder: attention projections anywhere else

    def extra(self, unet, target) -> Params:
        paths = [
            path
            for path, m in target.modules(unet, stop=_is_lora)
            if isinstance(m, nn.Linear | nn.Conv2d) and not _is_lora(m)
        ]
        return self._inject(unet, paths)

    def _inject(self, unet, paths: list[str]) -> Params:
        paths = [p for p in paths if not _is_lora(unet.get_submodule(p))]
        by_parent: dict[str, list[str]] = {}
        for path in paths:
            parent, _, child = path.rpartition(".")
            by_parent.setdefault(parent, []).append(child)
        for parent, children in by_parent.items():
            # Injecting into the parent alone: peft scans only its few children.
            config = LoraConfig(
                r=self.rank,
                lora_alpha=self.alpha,
                lora_dropout=self.dropout,
                target_modules=children,
            )
            module = get(unet, parent)
            inject_adapter_in_model(config, module, adapter_name=_ADAPTER)
            # Layers are all we use; a stale config would make the next injection warn.
            if "peft_config" in vars(module):
                del module.peft_config
        params: Params = {}
        for path in paths:
            layer = unet.get_submodule(path)
            for n, p in layer.named_parameters():
                if n.startswith(("lora_A.", "lora_B.")):
                    params[join(path, n)] = p
        return params

    def merge(self, unet) -> None:
        for path, m in list(unet.named_modules()):
            if isinstance(m, LoraLayer):
                m.merge(adapter_names=[_ADAPTER])
                replace(unet, path, m.get_base_layer())


def _is_lora(m: nn.Module) -> bool:
    return isinstance(m, LoraLayer)


METHOD = LoRA
