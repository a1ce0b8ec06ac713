"""Registry of image feature extractors: ``get_extractor(name, weights, device)``.

EXTRACTORS maps names to modules, each defining ``EXTRACTOR`` (a FeatureExtractor class),
imported only when requested: heavy or optional packages (torchxrayvision, torch-fidelity,
transformers) cost nothing until used.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from memctl.errors import UserError
from memctl.metrics.features.base import FeatureExtractor

EXTRACTORS: dict[str, str] = {
    "tiny": "memctl.metrics.features.tiny",
    "xrv-densenet121": "memctl.metrics.features.xrv",
    "inception": "memctl.metrics.features.inception",
    "clip": "memctl.metrics.features.clip",
}


def register(name: str, module: str) -> None:
    """Add an extractor: ``module`` defines ``EXTRACTOR(weights, device=..., batch_size=...)``."""
    if name in EXTRACTORS:
        raise ValueError(f"feature extractor {name!r} is already registered")
    EXTRACTORS[name] = module


def available_extractors() -> list[str]:
    return sorted(EXTRACTORS)


def get_extractor(
    name: str,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    *,
    batch_size: int = 64,
) -> FeatureExtractor:
    """Build the named extractor. ``weights`` is a local file or directory (never downloaded)."""
    try:
        module = EXTRACTORS[name]
    except KeyError:
        raise UserError(
            f"unknown feature extractor {name!r}; valid: {', '.join(available_extractors())}"
        ) from None
    return importlib.import_module(module).EXTRACTOR(weights, device=device, batch_size=batch_size)


__all__ = ["EXTRACTORS", "FeatureExtractor", "available_extractors", "get_extractor", "register"]
