"""The contract every PEFT method implements; `make` builds one by name (peft.registry)."""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from memctl.errors import UserError
from memctl.peft._target import Target
from memctl.peft.registry import METHODS, method_class

Params = dict[str, nn.Parameter]


class Method:
    """One parametrisation. `attach` installs it on a target and returns the parameters that
    may train there, named relative to the U-Net root; `merge` bakes them into plain weights.

    Layers outside every target are never touched, so masked-off blocks cost nothing.
    """

    name: ClassVar[str]
    # True: everything outside the mask trains too (full fine-tuning); False: frozen.
    trains_outside: ClassVar[bool] = False

    def __init__(self, **options) -> None:
        if options:
            raise UserError(f"method {self.name}: unknown option(s) {', '.join(sorted(options))}")

    def attach(self, unet: nn.Module, target: Target) -> Params:
        return getattr(self, target.kind)(unet, target)

    def block(self, unet: nn.Module, target: Target) -> Params:
        raise NotImplementedError

    def unmasked(self, unet: nn.Module, target: Target) -> Params:
        return {}

    def extra(self, unet: nn.Module, target: Target) -> Params:
        raise NotImplementedError

    def rest(self, unet: nn.Module, target: Target) -> Params:
        return self.extra(unet, target)

    def param_groups(self, params: Params, lr: float) -> list[dict]:
        return [{"params": list(params.values()), "lr": lr}]

    def merge(self, unet: nn.Module) -> None:
        """Default: the trainable tensors are the model's own weights; nothing to bake."""


def make(name: str, **options) -> Method:
    try:
        cls = method_class(name)
    except KeyError:
        raise UserError(f"method: unknown {name!r}; choose from {', '.join(METHODS)}") from None
    try:
        return cls(**options)
    except TypeError as err:  # an unknown keyword
        raise UserError(f"method {name}: bad option(s) {sorted(options)}: {err}") from None
