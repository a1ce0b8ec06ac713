"""Search spaces: how a bit vector maps onto U-Net blocks.

blocks16  one bit per Transformer2DModel (its BasicTransformerBlocks), down -> mid -> up.
attn32    two bits per Transformer2DModel: (norm1, attn1) and (norm2, attn2). The feed-forward
          half (norm3, ff) is in no bit: frozen, like the rest of the U-Net outside the mask.
paper13   the official code's grouping and semantics: down and mid blocks, then the first
          len-1 blocks of each up level (13 on SD); the last block of each up level is in no
          slot and always trains, and so does every parameter of the method outside the
          slotted blocks (the "remainder"). A 0 bit only removes what the official code masks
          (see each method's `unmasked` role).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from memctl.peft._blocks import transformer_blocks, transformer_models
from memctl.peft._target import Target


@dataclass(frozen=True)
class Slot:
    name: str
    targets: tuple[Target, ...]  # kind "block"


@dataclass
class Layout:
    slots: list[Slot]
    # (owner, target) pairs trained whatever the bits; paper13 only
    fixed_on: list[tuple[str, Target]] = field(default_factory=list)

    def covered(self) -> tuple[str, ...]:
        """Module paths inside some slot: what `rest` excludes."""
        return tuple(r for s in self.slots for t in s.targets for r in t.roots())

    def has_rest(self) -> bool:
        return any(t.kind == "rest" for _, t in self.fixed_on)


def _blocks16(unet: nn.Module) -> Layout:
    return Layout(
        [
            Slot(p, tuple(Target(b, "block") for b in transformer_blocks(unet, p)))
            for p in transformer_models(unet)
        ]
    )


_HALVES = {"attn1": ("norm1", "attn1"), "attn2": ("norm2", "attn2")}


def _attn32(unet: nn.Module) -> Layout:
    slots = []
    for p in transformer_models(unet):
        for half, children in _HALVES.items():
            targets = tuple(Target(b, "block", children) for b in transformer_blocks(unet, p))
            slots.append(Slot(f"{p}:{half}", targets))
    return Layout(slots)


def paper13_models(unet: nn.Module) -> tuple[list[str], list[str]]:
    """(slotted, unslotted) Transformer2DModel paths in the official order."""
    slotted, unslotted = [], []
    for p in transformer_models(unet):
        if p.startswith("up_blocks."):
            level = unet.get_submodule(p.rsplit(".", 1)[0])
            last = len(level) - 1
            (unslotted if int(p.rsplit(".", 1)[1]) == last else slotted).append(p)
        else:
            slotted.append(p)
    return slotted, unslotted


def _paper13(unet: nn.Module) -> Layout:
    slotted, _ = paper13_models(unet)
    layout = _blocks16(unet)
    layout.slots = [s for s in layout.slots if s.name in slotted]
    # What the official code trains whatever the mask: the method's parameters everywhere
    # outside the slotted blocks (this includes the unslotted blocks) ...
    layout.fixed_on.append(("remainder", Target("", "rest", exclude=layout.covered())))
    # ... and, inside each slotted block, what the official name filter never masks.
    for slot in layout.slots:
        layout.fixed_on += [("remainder", Target(t.path, "unmasked")) for t in slot.targets]
    return layout


SPACES: dict[str, Callable[[nn.Module], Layout]] = {
    "blocks16": _blocks16,
    "attn32": _attn32,
    "paper13": _paper13,
}

# Bit counts on Stable-Diffusion-architecture U-Nets; for validating a mask file without a model.
NOMINAL_BITS = {"blocks16": 16, "attn32": 32, "paper13": 13}


def layout(unet: nn.Module, space: str) -> Layout:
    return SPACES[space](unet)
