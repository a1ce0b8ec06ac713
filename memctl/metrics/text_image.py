"""Text-image agreement scores: CLIPScore, and BioViL-T similarity for chest X-rays.

CLIPScore here is 100 * max(cos(image, text), 0) averaged over pairs, torchmetrics'
definition. It is computed directly with transformers because torchmetrics 1.9 accepts only
hub names (not local directories) and breaks on transformers 5's model outputs.
BioViL-T (the paper's score) needs the optional hi-ml-multimodal package and a local copy of
microsoft/BiomedVLP-BioViL-T; without them the result says so instead of raising, so an
evaluation can still report its other metrics.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from memctl.metrics._tensors import ArrayLike, as_float_tensor
from memctl.metrics.features.clip import ClipImage, pooled

BIOVIL_T_REPO = "microsoft/BiomedVLP-BioViL-T"
BIOVIL_T_IMAGE_WEIGHTS = "biovil_t_image_model_proj_size_128.pt"


@dataclass(frozen=True)
class TextImageScore:
    name: str
    value: float | None  # None when unavailable
    n: int
    reason: str = ""  # why the score is unavailable

    @property
    def available(self) -> bool:
        return self.value is not None


def _check_pairs(images: torch.Tensor, captions: Sequence[str]) -> None:
    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")


def clip_score(
    images: ArrayLike,
    captions: Sequence[str],
    model_dir: str | Path,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 32,
) -> TextImageScore:
    """Mean CLIPScore of images (N, C, H, W) in [0, 1] against their captions."""
    from transformers import AutoTokenizer

    images = as_float_tensor(images)
    _check_pairs(images, captions)
    encoder = ClipImage(model_dir, device=device, batch_size=batch_size)
    tokenizer = AutoTokenizer.from_pretrained(str(encoder.path), local_files_only=True)
    max_len = encoder.model.config.text_config.max_position_embeddings
    image_feats = F.normalize(encoder(images), dim=1)
    text_feats = []
    with torch.inference_mode():
        for start in range(0, len(captions), batch_size):
            tokens = tokenizer(
                list(captions[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_len,
                return_tensors="pt",
            ).to(encoder.device)
            out = encoder.model.get_text_features(
                input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
            )
            text_feats.append(pooled(out).float().cpu())
    text_feats = F.normalize(torch.cat(text_feats), dim=1)
    cos = (image_feats * text_feats).sum(dim=1)
    return TextImageScore("clip_score", float(100 * cos.clamp_min(0).mean()), len(images))


def _unavailable(n: int, reason: str) -> TextImageScore:
    return TextImageScore("biovil_t", None, n, reason)


def biovil_t_score(
    images: ArrayLike,
    captions: Sequence[str],
    model_dir: str | Path | None,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 16,
) -> TextImageScore:
    """Mean cosine similarity of BioViL-T image and text embeddings (paper: 0.60-0.75).

    ``model_dir`` is a local snapshot of microsoft/BiomedVLP-BioViL-T, including
    biovil_t_image_model_proj_size_128.pt. Images are made grey-to-RGB, resized (short side
    512) and centre-cropped to 448, as hi-ml-multimodal's inference transform does.
    """
    images = as_float_tensor(images)
    _check_pairs(images, captions)
    try:
        importlib.import_module("health_multimodal")
    except ImportError:
        return _unavailable(len(images), "hi-ml-multimodal is not installed")
    path = Path(model_dir).expanduser() if model_dir is not None else None
    if path is None or not (path / BIOVIL_T_IMAGE_WEIGHTS).is_file():
        return _unavailable(
            len(images),
            f"no local {BIOVIL_T_REPO} snapshot with {BIOVIL_T_IMAGE_WEIGHTS} at {path}; "
            f"on a machine with internet: huggingface-cli download {BIOVIL_T_REPO} --local-dir DIR",
        )
    from health_multimodal.image.model.model import ImageModel
    from health_multimodal.image.model.types import ImageEncoderType
    from health_multimodal.text.model import CXRBertModel, CXRBertTokenizer

    tokenizer = CXRBertTokenizer.from_pretrained(str(path), local_files_only=True)
    text_model = CXRBertModel.from_pretrained(str(path), local_files_only=True).eval().to(device)
    image_model = (
        ImageModel(
            img_encoder_type=ImageEncoderType.RESNET50_MULTI_IMAGE,
            joint_feature_size=128,
            pretrained_model_path=path / BIOVIL_T_IMAGE_WEIGHTS,
        )
        .eval()
        .to(device)
    )
    sims = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = _biovil_transform(images[start : start + batch_size]).to(device)
            img = image_model(x).projected_global_embedding
            tokens = tokenizer(
                list(captions[start : start + batch_size]),
                padding="longest",
                return_tensors="pt",
            ).to(device)
            txt = text_model.get_projected_text_embeddings(
                input_ids=tokens.input_ids, attention_mask=tokens.attention_mask
            )
            sims.append((F.normalize(img, dim=1) * F.normalize(txt, dim=1)).sum(1).cpu())
    return TextImageScore("biovil_t", float(torch.cat(sims).mean()), len(images))


def _biovil_transform(images: torch.Tensor) -> torch.Tensor:
    x = images.float().mean(dim=1, keepdim=True)  # chest X-rays are grey
    h, w = x.shape[-2:]
    scale = 512 / min(h, w)
    new_h, new_w = max(512, round(h * scale)), max(512, round(w * scale))
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True)
    top, left = (new_h - 448) // 2, (new_w - 448) // 2
    return x[:, :, top : top + 448, left : left + 448].expand(-1, 3, -1, -1)
