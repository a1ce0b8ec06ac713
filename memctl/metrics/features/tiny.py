"""A small CNN with fixed random weights: for tests and the embedded default only.

Its features carry no learned semantics, so its FID/AMD numbers are only comparable with
other numbers from this same extractor. Weights come from a seeded torch.Generator, so every
machine builds identical weights without any file.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from memctl.errors import UserError
from memctl.metrics.features.base import FeatureExtractor, resize, to_channels

SEED = 20240917
_CHANNELS = (3, 16, 32, 32)
_SIZE = 64


class TinyRandomCNN(FeatureExtractor):
    name = "tiny"
    dim = 2 * _CHANNELS[-1]  # mean and std pooling of the last feature map

    def _load(self, weights: str | Path | None) -> None:
        if weights is not None:
            raise UserError("feature extractor 'tiny' is built from a seed and takes no weights")
        gen = torch.Generator().manual_seed(SEED)
        self.weights = []
        for c_in, c_out in zip(_CHANNELS[:-1], _CHANNELS[1:], strict=True):
            # He-normal scale keeps activations O(1) through the ReLU stack.
            std = math.sqrt(2.0 / (c_in * 9))
            w = torch.randn(c_out, c_in, 3, 3, generator=gen) * std
            self.weights.append(w.to(self.device))

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        x = resize(to_channels(images, 3), _SIZE) * 2.0 - 1.0
        for w in self.weights:
            x = F.relu(F.conv2d(x, w, stride=2, padding=1))
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


EXTRACTOR = TinyRandomCNN
