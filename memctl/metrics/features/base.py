"""Common interface of image feature extractors used by FID and AMD."""

from __future__ import annotations

import abc
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F

from memctl.errors import UserError
from memctl.metrics._tensors import ArrayLike, as_float_tensor


class FeatureExtractor(abc.ABC):
    """Callable mapping images (N, C, H, W) in [0, 1], C in {1, 3}, to features (N, dim).

    Subclasses implement ``_embed`` on one preprocessed batch already on ``self.device``;
    batching, autograd, and moving results to float32 CPU happen here. Subclasses load
    their network in ``_load``; one with a weights file of its own names its default path
    and download address, and ``_load`` then gets the local file (never downloaded).
    """

    name: str
    dim: int
    default_weights: ClassVar[Path | None] = None
    weights_url: ClassVar[str] = ""

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
    ) -> None:
        self.device = torch.device(device)
        self.batch_size = batch_size
        if self.default_weights is not None:
            weights = local_weights(weights, self.default_weights, self.name, self.weights_url)
        self._load(weights)

    @abc.abstractmethod
    def _load(self, weights: str | Path | None) -> None:
        """Builds the network on ``self.device`` from ``weights`` (a local file or folder)."""

    @abc.abstractmethod
    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        """Features of one batch of float32 images in [0, 1] on ``self.device``."""

    def __call__(self, images: ArrayLike) -> torch.Tensor:
        x = as_float_tensor(images)
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"{self.name}: need (N, 1|3, H, W) images, got {tuple(x.shape)}")
        out = []
        with torch.inference_mode():
            for start in range(0, len(x), self.batch_size):
                batch = x[start : start + self.batch_size].to(self.device, torch.float32)
                out.append(self._embed(batch).float().cpu())
        if not out:
            return torch.empty(0, self.dim)
        return torch.cat(out)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, device={self.device})"


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey -> RGB by repetition, RGB -> grey by channel mean (as torchxrayvision does)."""
    if images.shape[1] == channels:
        return images
    if channels == 3:
        return images.expand(-1, 3, -1, -1)
    return images.mean(dim=1, keepdim=True)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True)


def local_weights(weights: str | Path | None, default: Path, name: str, url: str) -> Path:
    """The weights file to load (given, else the default cache path); exit 2 naming the
    expected path and where to get the file when it is not there (no downloads at run time)."""
    path = Path(weights if weights is not None else default).expanduser()
    if not path.is_file():
        raise UserError(f"{name} weights not found at {path}; on a machine with internet: "
                        f"wget {url} and copy it there")
    return path
