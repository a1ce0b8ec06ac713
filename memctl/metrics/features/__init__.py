"""Registry of image feature extractors: ``get_extractor(name, weights, device)``.

Heavy or optional packages (torchxrayvision, torch-fidelity, transformers) are imported only
when their extractor is requested, so missing ones cost nothing until used.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from memctl.errors import UserError
from memctl.metrics.features.base import FeatureExtractor

Factory = Callable[..., FeatureExtractor]


def _tiny(weights: str | Path | None, **kw: object) -> FeatureExtractor:
    from memctl.metrics.features.tiny import TinyRandomCNN

    if weights is not None:
        raise UserError("feature extractor 'tiny' is built from a seed and takes no weights")
    return TinyRandomCNN(**kw)


def _xrv(weights: str | Path | None, **kw: object) -> FeatureExtractor:
    from memctl.metrics.features.xrv import XrvDenseNet121

    return XrvDenseNet121(weights, **kw)


def _inception(weights: str | Path | None, **kw: object) -> FeatureExtractor:
    from memctl.metrics.features.inception import FidInception

    return FidInception(weights, **kw)


def _clip(weights: str | Path | None, **kw: object) -> FeatureExtractor:
    from memctl.metrics.features.clip import ClipImage

    return ClipImage(weights, **kw)


_REGISTRY: dict[str, Factory] = {
    "tiny": _tiny,
    "xrv-densenet121": _xrv,
    "inception": _inception,
    "clip": _clip,
}


def register(name: str, factory: Factory) -> None:
    """Add an extractor: ``factory(weights, device=..., batch_size=...)``."""
    if name in _REGISTRY:
        raise ValueError(f"feature extractor {name!r} is already registered")
    _REGISTRY[name] = factory


def available_extractors() -> list[str]:
    return sorted(_REGISTRY)


def get_extractor(
    name: str,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    *,
    batch_size: int = 64,
) -> FeatureExtractor:
    """Build the named extractor. ``weights`` is a local file or directory (never downloaded)."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise UserError(
            f"unknown feature extractor {name!r}; valid: {', '.join(available_extractors())}"
        ) from None
    return factory(weights, device=device, batch_size=batch_size)


__all__ = ["FeatureExtractor", "available_extractors", "get_extractor", "register"]
