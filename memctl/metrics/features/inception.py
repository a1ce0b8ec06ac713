"""FID Inception-v3 (the TF-ported network of the original FID), pool3 2048-d features."""

from __future__ import annotations

from pathlib import Path

import torch

from memctl.errors import UserError
from memctl.metrics.features.base import FeatureExtractor, to_channels

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS_FILE}"
DEFAULT_WEIGHTS = Path("~/.cache/torch/hub/checkpoints") / WEIGHTS_FILE


class FidInception(FeatureExtractor):
    name = "inception"
    dim = 2048
    default_weights = DEFAULT_WEIGHTS
    weights_url = WEIGHTS_URL

    def _load(self, weights: str | Path | None) -> None:
        try:
            from torchmetrics.image.fid import NoTrainInceptionV3
            from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE
        except ImportError as exc:
            raise UserError("feature extractor 'inception' needs torchmetrics[image]") from exc
        if not _TORCH_FIDELITY_AVAILABLE:
            raise UserError(
                "feature extractor 'inception' needs the torch-fidelity package: "
                "pip install torch-fidelity"
            )
        self.net = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=[str(self.dim)],
            feature_extractor_weights_path=str(weights),
        ).to(self.device)

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        # The network resizes to 299 itself and expects uint8 RGB, like torch-fidelity.
        x = (to_channels(images, 3).clamp(0, 1) * 255).round().to(torch.uint8)
        return self.net(x).reshape(len(x), -1)


EXTRACTOR = FidInception
