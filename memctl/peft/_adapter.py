"""apply(): put a method on the blocks a mask selects; Adapter: what the trainer holds."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from memctl.errors import UserError
from memctl.peft._blocks import ALWAYS
from memctl.peft._method import Method, make
from memctl.peft._spaces import SPACES, Layout, layout
from memctl.peft._target import Target

_MARK = "_memctl_adapter"


class Adapter:
    """The trainable side of a PEFT-wrapped U-Net. Every parameter not in
    `trainable_parameters()` has requires_grad=False."""

    def __init__(
        self,
        unet,
        method: Method,
        space: str,
        bits: list[int],
        always: list[str],
        slots: list[str],
        params: dict[str, nn.Parameter],
        owners: dict[str, str],
        total: int,
        options: dict | None = None,
    ) -> None:
        self.unet = unet
        self.method = method
        self.space = space
        self.bits = bits
        self.always = always
        self.slots = slots
        self.params = params
        self.owners = owners  # parameter name -> slot name, `always` group or "remainder"
        self._total = total
        self.options = dict(options or {})  # the method's options, as given to apply()

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.params.values())

    def param_groups(self, lr: float) -> list[dict]:
        return [g for g in self.method.param_groups(self.params, lr) if g["params"]]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in self.params.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = sorted(set(self.params) - set(state))
        unexpected = sorted(set(state) - set(self.params))
        if missing or unexpected:
            raise UserError(
                f"adapter state: missing {missing[:3]} unexpected {unexpected[:3]} "
                f"(method {self.method.name}, space {self.space})"
            )
        with torch.no_grad():
            for n, p in self.params.items():
                if state[n].shape != p.shape:
                    raise UserError(
                        f"adapter state: {n} has shape {tuple(state[n].shape)}, "
                        f"expected {tuple(p.shape)}"
                    )
                p.copy_(state[n])

    def merge(self) -> nn.Module:
        """Bake the adapter into plain diffusers weights, in place; the adapter is spent."""
        self.method.merge(self.unet)
        self.unet.requires_grad_(True)  # as a stock model loads
        delattr(self.unet, _MARK)
        self.params = {}
        return self.unet

    def count(self) -> dict:
        """Trainable parameters against the plain U-Net's total (adapter tensors excluded)."""
        trainable = sum(p.numel() for p in self.params.values())
        per_block = dict.fromkeys(self.slots, 0)
        other: dict[str, int] = {}
        for n, p in self.params.items():
            owner = self.owners[n]
            bucket = per_block if owner in per_block else other
            bucket[owner] = bucket.get(owner, 0) + p.numel()
        return {
            "trainable": trainable,
            "total": self._total,
            "percent": 100.0 * trainable / self._total,
            "per_block": per_block,
            "other": other,
        }


def apply(
    unet: nn.Module,
    method: str,
    bits: Sequence[int],
    space: str = "blocks16",
    always: Sequence[str] = (),
    **options,
) -> Adapter:
    """Make `method` trainable on the blocks where `bits` is 1 (and in the `always` groups);
    freeze everything else. `options` go to the method (e.g. rank=8 for lora)."""
    if hasattr(unet, _MARK):
        raise UserError("model already carries an adapter; merge it first")
    lay = _layout(unet, space)
    m = make(method, **options)
    bits = check_bits(bits, len(lay.slots), space)
    for group in always:
        if group not in ALWAYS:
            raise UserError(f"always: unknown group {group!r}; choose from {', '.join(ALWAYS)}")

    # Fixed targets first: a parameter trained whatever the bits is owned by no slot.
    targets = list(lay.fixed_on)
    targets += [(s.name, t) for s, b in zip(lay.slots, bits, strict=True) if b for t in s.targets]
    targets += [(g, Target(p, "extra")) for g in always for p in ALWAYS[g](unet)]
    if m.trains_outside and not lay.has_rest():
        targets.append(("remainder", Target("", "rest", exclude=lay.covered())))

    total = sum(p.numel() for p in unet.parameters())
    unet.requires_grad_(False)
    params: dict[str, nn.Parameter] = {}
    owners: dict[str, str] = {}
    for owner, target in targets:
        for name, p in m.attach(unet, target).items():
            if name not in params:
                params[name], owners[name] = p, owner
    for p in params.values():
        p.requires_grad_(True)
    adapter = Adapter(
        unet,
        m,
        space,
        bits,
        list(always),
        [s.name for s in lay.slots],
        params,
        owners,
        total,
        options,
    )
    setattr(unet, _MARK, True)
    return adapter


def _layout(unet: nn.Module, space: str) -> Layout:
    if space not in SPACES:
        raise UserError(f"space: unknown {space!r}; choose from {', '.join(SPACES)}")
    return layout(unet, space)


def check_bits(bits: Sequence[int], n: int, space: str) -> list[int]:
    bits = list(bits)
    if len(bits) != n:
        raise UserError(f"bits: space {space} needs {n} bits, got {len(bits)}")
    if any(b not in (0, 1) for b in bits):
        raise UserError(f"bits: must be 0 or 1, got {bits}")
    return [int(b) for b in bits]


def num_bits(unet: nn.Module, space: str = "blocks16") -> int:
    return len(_layout(unet, space).slots)


def block_names(unet: nn.Module, space: str = "blocks16") -> list[str]:
    return [s.name for s in _layout(unet, space).slots]
