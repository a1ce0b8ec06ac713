"""Parameter-efficient fine-tuning of U-Net blocks selected by a binary mask.

    adapter = apply(unet, "svdiff", bits, space="blocks16", always=("t2d_proj_norm",))
    optimizer = torch.optim.AdamW(adapter.param_groups(lr=1e-3))
    ...
    adapter.merge().save_pretrained(out)  # plain diffusers weights

Semantics (spaces are described in _spaces):
- A block is the BasicTransformerBlock(s) of one Transformer2DModel. Bit k = every trainable
  parameter the method has in block k; a 0 bit leaves that block bitwise unchanged.
- Outside the blocks everything is frozen, except the `always` groups (ALWAYS), which get
  the method's own treatment: svdiff shifts their singular values, difffit trains their
  biases and norms, lora adds LoRA to their Linear/Conv2d layers, attention trains them fully.
- `full` honours the bits for the blocks and always trains everything else: all ones is
  plain full fine-tuning. `freeze` trains nothing.
- `paper13` reproduces the official code instead: a 0 bit removes only what its name
  filter removes, and the remainder of the U-Net trains whatever the mask.

Names of methods and spaces live in peft.registry (no torch); the rest of this surface is
imported on first use, so `memctl.peft.registry` is cheap to import from config.
"""

from __future__ import annotations

import importlib

from memctl.peft.registry import METHODS, SPACES

_LAZY = {
    "Adapter": "memctl.peft._adapter",
    "apply": "memctl.peft._adapter",
    "block_names": "memctl.peft._adapter",
    "num_bits": "memctl.peft._adapter",
    "ALWAYS": "memctl.peft._blocks",
    "load_adapter": "memctl.peft._export",
    "save_adapter": "memctl.peft._export",
    "MaskSpec": "memctl.peft.mask",
    "parse_bits": "memctl.peft.mask",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ALWAYS",
    "METHODS",
    "SPACES",
    "Adapter",
    "MaskSpec",
    "apply",
    "block_names",
    "load_adapter",
    "num_bits",
    "parse_bits",
    "save_adapter",
]
