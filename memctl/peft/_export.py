"""An adapter on disk: mask.json + adapter.safetensors (only the trained tensors)."""

from __future__ import annotations

import os
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from memctl.errors import UserError
from memctl.peft._adapter import Adapter
from memctl.peft.mask import MaskSpec

MASK_FILE = "mask.json"
WEIGHTS_FILE = "adapter.safetensors"


def save_adapter(adapter: Adapter, directory: str | os.PathLike) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    MaskSpec.from_adapter(adapter).save(directory / MASK_FILE)
    tensors = {k: v.detach().contiguous().cpu() for k, v in adapter.state_dict().items()}
    save_file(tensors, str(directory / WEIGHTS_FILE))
    return directory


def load_adapter(unet: nn.Module, directory: str | os.PathLike) -> Adapter:
    """Re-apply a saved mask to a fresh copy of the base model and load its tensors."""
    directory = Path(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise UserError(f"adapter {directory}: no {WEIGHTS_FILE}")
    adapter = MaskSpec.load(directory / MASK_FILE).apply(unet)
    adapter.load_state_dict(load_file(str(weights), device=str(next(unet.parameters()).device)))
    return adapter
