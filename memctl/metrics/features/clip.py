"""CLIP image embeddings from a local transformers model directory."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from memctl.errors import UserError
from memctl.metrics.features.base import FeatureExtractor, to_channels

_HOW_TO_GET = (
    "on a machine with internet: huggingface-cli download openai/clip-vit-large-patch14 "
    "--local-dir DIR, then copy DIR there"
)


class ClipImage(FeatureExtractor):
    """Projected CLIP image embeddings (not normalised; AMD's cosine does that)."""

    name = "clip"

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
    ) -> None:
        super().__init__(device=device, batch_size=batch_size)
        if weights is None:
            raise UserError(
                f"feature extractor 'clip' needs weights=<local CLIP directory>; {_HOW_TO_GET}"
            )
        if not (Path(weights) / "config.json").is_file():
            raise UserError(f"CLIP model directory not found at {weights}; {_HOW_TO_GET}")
        from transformers import CLIPImageProcessor, CLIPModel

        self.model = CLIPModel.from_pretrained(str(weights), local_files_only=True)
        self.model = self.model.eval().to(self.device)
        proc = CLIPImageProcessor.from_pretrained(str(weights), local_files_only=True)
        crop = proc.crop_size
        self.size = crop["height"] if isinstance(crop, dict) else int(crop)
        self.mean = torch.tensor(proc.image_mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(proc.image_std, device=self.device).view(1, 3, 1, 1)
        self.dim = int(self.model.config.projection_dim)

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        # Tensor version of CLIPImageProcessor: shortest side to size (bicubic), centre crop.
        x = to_channels(images, 3)
        h, w = x.shape[-2:]
        scale = self.size / min(h, w)
        new_h, new_w = max(self.size, round(h * scale)), max(self.size, round(w * scale))
        x = F.interpolate(x, size=(new_h, new_w), mode="bicubic", antialias=True).clamp(0, 1)
        top, left = (new_h - self.size) // 2, (new_w - self.size) // 2
        x = x[:, :, top : top + self.size, left : left + self.size]
        out = self.model.get_image_features(pixel_values=(x - self.mean) / self.std)
        # transformers >= 5 returns a model output whose pooler_output is the projection.
        return out if isinstance(out, torch.Tensor) else out.pooler_output
