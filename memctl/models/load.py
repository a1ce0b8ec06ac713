"""Loading a local diffusers pipeline directory (never the network)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from memctl.errors import UserError

_REQUIRED = ("model_index.json", "unet", "vae", "text_encoder", "tokenizer", "scheduler")


def quiet_libraries() -> None:
    """Offline mode and no per-shard progress bars from the HF libraries."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "DS_ACCELERATOR" not in os.environ:
        # Spares DeepSpeed's "unable to detect GPU" warning on CPU-only hosts.
        import torch

        if not torch.cuda.is_available():
            os.environ["DS_ACCELERATOR"] = "cpu"
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    logging.getLogger("DeepSpeed").setLevel(logging.ERROR)


def check_model_dir(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"{p}: model directory not found (expected a diffusers pipeline folder)")
    missing = [name for name in _REQUIRED if not (p / name).exists()]
    if missing:
        raise UserError(f"{p}: not a diffusers pipeline directory (missing {', '.join(missing)})")
    return p


@dataclass
class Components:
    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    scheduler: object


def load_components(path: str | Path, *, text: bool = True, device: str = "cpu") -> Components:
    """Loads the parts a trial needs; the text encoder only when asked (cache holds embeddings)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextModel

    quiet_libraries()
    root = check_model_dir(path)
    unet = UNet2DConditionModel.from_pretrained(root / "unet").to(device)
    vae = AutoencoderKL.from_pretrained(root / "vae").to(device)
    vae.requires_grad_(False)
    text_encoder = tokenizer = None
    if text:
        text_encoder = CLIPTextModel.from_pretrained(root / "text_encoder").to(device)
        text_encoder.requires_grad_(False)
        tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer")
    scheduler = DDPMScheduler.from_pretrained(root / "scheduler")
    return Components(unet, vae, text_encoder, tokenizer, scheduler)


def load_pipeline(path: str | Path):
    """The whole pipeline, as a stock StableDiffusionPipeline."""
    from diffusers import StableDiffusionPipeline

    quiet_libraries()
    return StableDiffusionPipeline.from_pretrained(check_model_dir(path), safety_checker=None,
                                                   requires_safety_checker=False)
