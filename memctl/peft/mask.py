"""A mask as a file: method, space, bits, block names and counts, in JSON.

{"method": "svdiff", "space": "paper13", "bits": [1, 1, 0, ...], "always": [],
 "options": {}, "blocks": ["down_blocks.0.attentions.0", ...], "counts": {...}}
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from torch import nn

from memctl.errors import UserError
from memctl.peft._adapter import Adapter, apply, block_names
from memctl.peft._blocks import ALWAYS
from memctl.peft._spaces import NOMINAL_BITS
from memctl.peft.registry import METHODS, SPACES


@dataclass
class MaskSpec:
    method: str
    """PEFT method: one of memctl.peft.METHODS."""
    bits: list[int]
    """One 0/1 per slot of the space, in block_names() order."""
    space: str = "blocks16"
    """How bits map onto blocks: one of memctl.peft.SPACES."""
    always: list[str] = field(default_factory=list)
    """Groups outside the mask that always train (memctl.peft.ALWAYS)."""
    options: dict = field(default_factory=dict)
    """Method options, e.g. {"rank": 8} for lora."""
    blocks: list[str] = field(default_factory=list)
    """Slot names the bits refer to (recorded for reading; checked against the model)."""
    counts: dict | None = None
    """Adapter.count() when the mask was saved (informational)."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UserError(f"method: unknown {self.method!r}; choose from {', '.join(METHODS)}")
        if self.space not in SPACES:
            raise UserError(f"space: unknown {self.space!r}; choose from {', '.join(SPACES)}")
        if not isinstance(self.bits, list | tuple) or any(
            b not in (0, 1) or isinstance(b, float) for b in self.bits
        ):
            raise UserError(f"bits: must be a list of 0/1, got {self.bits!r}")
        self.bits = [int(b) for b in self.bits]
        expected = len(self.blocks) if self.blocks else NOMINAL_BITS[self.space]
        if len(self.bits) != expected:
            what = "blocks" if self.blocks else f"space {self.space}"
            raise UserError(f"bits: {what} needs {expected} bits, got {len(self.bits)}")
        bad = [g for g in self.always if g not in ALWAYS]
        if bad:
            raise UserError(f"always: unknown group(s) {bad}; choose from {', '.join(ALWAYS)}")

    @classmethod
    def from_adapter(cls, adapter: Adapter) -> MaskSpec:
        return cls(
            adapter.method.name,
            list(adapter.bits),
            adapter.space,
            list(adapter.always),
            dict(adapter.options),
            list(adapter.slots),
            adapter.count(),
        )

    def apply(self, unet: nn.Module) -> Adapter:
        """Apply to `unet`, first checking the recorded block names match its structure."""
        names = block_names(unet, self.space)
        if self.blocks and self.blocks != names:
            raise UserError(
                f"blocks: the mask was made for other blocks than this model's "
                f"{self.space} ({len(self.blocks)} recorded, {len(names)} here)"
            )
        return apply(unet, self.method, self.bits, self.space, self.always, **self.options)

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> MaskSpec:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise UserError(f"mask {path}: cannot read: {err}") from None
        if not isinstance(data, dict):
            raise UserError(f"mask {path}: expected a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"mask {path}: unknown field(s) {unknown}")
        missing = [k for k in ("method", "bits") if k not in data]
        if missing:
            raise UserError(f"mask {path}: missing field(s) {missing}")
        try:
            return cls(**data)
        except UserError as err:
            raise UserError(f"mask {path}: {err}") from None


def parse_bits(text: str) -> list[int]:
    """'1101...', '1,1,0,1' or '[1, 1, 0, 1]' -> [1, 1, 0, 1]."""
    body = text.strip().strip("[]")
    parts = [p for p in re.split(r"[,\s]+", body) if p] if re.search(r"[,\s]", body) else list(body)
    if not parts or any(p not in ("0", "1") for p in parts):
        raise UserError(f"mask: expected bits like 1101 or 1,1,0,1, got {text!r}")
    return [int(p) for p in parts]
