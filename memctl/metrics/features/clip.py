"""CLIP image embeddings from a local transformers model directory."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from memctl.errors import UserError
from memctl.metrics.features.base import FeatureExtractor, to_channels

HOW_TO_GET = (
    "on a machine with internet: huggingface-cli download openai/clip-vit-large-patch14 "
    "--local-dir DIR, then copy DIR there"
)
# OpenAI CLIP preprocessing, used when the directory has no preprocessor_config.json.
_MEAN = (0.48145466, 0.4578275, 0.40821073)
_STD = (0.26862954, 0.26130258, 0.27577711)


def check_clip_dir(weights: str | Path | None) -> Path:
    if weights is None:
        raise UserError(f"CLIP needs weights=<local CLIP model directory>; {HOW_TO_GET}")
    path = Path(weights).expanduser()
    if not (path / "config.json").is_file():
        raise UserError(f"CLIP model directory not found at {path}; {HOW_TO_GET}")
    return path


class ClipImage(FeatureExtractor):
    """Projected CLIP image embeddings (not normalised; AMD's cosine does that).

    Preprocessing is done on tensors (bicubic resize of the short side, centre crop,
    normalise) with the directory's processor settings, so torchvision is not needed.
    """

    name = "clip"

    def _load(self, weights: str | Path | None) -> None:
        from transformers import CLIPModel

        self.path = check_clip_dir(weights)
        self.model = CLIPModel.from_pretrained(str(self.path), local_files_only=True)
        self.model = self.model.eval().to(self.device)
        proc_file = self.path / "preprocessor_config.json"
        proc = json.loads(proc_file.read_text()) if proc_file.is_file() else {}
        crop = proc.get("crop_size", self.model.config.vision_config.image_size)
        self.size = int(crop["height"] if isinstance(crop, dict) else crop)
        self.mean = torch.tensor(proc.get("image_mean", _MEAN), device=self.device)
        self.std = torch.tensor(proc.get("image_std", _STD), device=self.device)
        self.dim = int(self.model.config.projection_dim)

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        x = to_channels(images, 3)
        h, w = x.shape[-2:]
        scale = self.size / min(h, w)
        new_h, new_w = max(self.size, round(h * scale)), max(self.size, round(w * scale))
        x = F.interpolate(x, size=(new_h, new_w), mode="bicubic", antialias=True).clamp(0, 1)
        top, left = (new_h - self.size) // 2, (new_w - self.size) // 2
        x = x[:, :, top : top + self.size, left : left + self.size]
        x = (x - self.mean.view(1, 3, 1, 1)) / self.std.view(1, 3, 1, 1)
        return pooled(self.model.get_image_features(pixel_values=x))


def pooled(out: object) -> torch.Tensor:
    # transformers >= 5 returns a model output whose pooler_output is the projection.
    return out if isinstance(out, torch.Tensor) else out.pooler_output


EXTRACTOR = ClipImage
