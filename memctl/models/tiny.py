"""The embedded model: a tiny, pretrained Stable-Diffusion-architecture pipeline.

Same structure as SD v1.5 (4 U-Net levels, 2 layers per block, cross-attention in down, mid
and up blocks: 16 transformer blocks), so masks, PEFT code and metrics run unchanged on it.
Its weights ship inside the package (weights/tiny.safetensors, fp16, checked against
weights/tiny.sha256): pretrained on general-domain scenes by memctl.models.pretrain, which
reproduces them from a seed. The tokenizer is an offline word-level one; nothing is
downloaded. 32 px images, a VAE that halves each side (16x16x4 latents): small enough to
fine-tune in seconds on a laptop CPU, sharp enough that a replayed image is recognisable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from memctl.data.vocabulary import special_tokens, vocabulary

RESOLUTION = 32
MAX_TOKENS = 48
WEIGHTS_DIR = Path(__file__).parent / "weights"

UNET_CONFIG = dict(
    sample_size=RESOLUTION // 2,  # latent side: the VAE halves each side
    in_channels=4,
    out_channels=4,
    block_out_channels=(32, 64, 64, 64),
    layers_per_block=2,
    down_block_types=(
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=64,
    # diffusers' legacy name for the head count: one head of 32-64 channels runs twice as
    # fast on CPU as 8 heads of 4.
    attention_head_dim=1,
    norm_num_groups=16,
)

VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    block_out_channels=(16, 32),  # 2 levels: 32 px images -> 16x16 latents
    down_block_types=("DownEncoderBlock2D",) * 2,
    up_block_types=("UpDecoderBlock2D",) * 2,
    layers_per_block=1,
    norm_num_groups=8,
    sample_size=RESOLUTION,
)

TEXT_CONFIG = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=MAX_TOKENS,
    projection_dim=64,
)


def build_tokenizer():
    """Word-level fast tokenizer over the built-in radiology vocabulary (no download)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    bos, eos, pad, unk = special_tokens()
    vocab = {tok: i for i, tok in enumerate([pad, unk, bos, eos, *vocabulary()])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    core.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", special_tokens=[(bos, vocab[bos]), (eos, vocab[eos])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        unk_token=unk,
        model_max_length=MAX_TOKENS,
    )


class WeightsError(RuntimeError):
    """The shipped weights are missing or do not match their checksum (a broken install)."""


def shipped_weights() -> dict[str, torch.Tensor]:
    """The pretrained weights inside the package, after checking their SHA-256."""
    import hashlib

    from safetensors.torch import load

    path = WEIGHTS_DIR / "tiny.safetensors"
    try:
        data = path.read_bytes()
        expected = (WEIGHTS_DIR / "tiny.sha256").read_text().split()[0]
    except OSError as err:
        raise WeightsError(f"embedded model weights missing ({err}); reinstall memctl") from None
    if hashlib.sha256(data).hexdigest() != expected:
        raise WeightsError(f"{path}: checksum mismatch; reinstall memctl")
    return load(data)


def build_tiny_pipeline(seed: int = 0, pretrained: bool = True):
    """Builds the embedded pipeline in memory: the shipped pretrained weights, or (pretrained
    False) the seeded random initialisation memctl.models.pretrain starts from."""
    from diffusers import (
        AutoencoderKL,
        DDPMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **TEXT_CONFIG,
        )
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(**VAE_CONFIG)
    torch.manual_seed(seed + 2)
    unet = UNet2DConditionModel(**UNET_CONFIG)
    if pretrained:
        weights = shipped_weights()
        for name, module in (("vae", vae), ("text_encoder", text_encoder), ("unet", unet)):
            prefix = f"{name}."
            module.load_state_dict({k[len(prefix):]: v.float() for k, v in weights.items()
                                    if k.startswith(prefix)})
        from safetensors import safe_open

        with safe_open(str(WEIGHTS_DIR / "tiny.safetensors"), "pt") as fh:
            meta = json.loads(fh.metadata()["memctl"])
        vae.register_to_config(scaling_factor=meta["scaling_factor"])
    scheduler = DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        steps_offset=1,
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def write_tiny_model(out_dir: str | Path, seed: int = 0, pretrained: bool = True) -> Path:
    """Writes the embedded pipeline as a standard diffusers directory (owner-only)."""
    from memctl.models.load import quiet_libraries

    quiet_libraries()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    build_tiny_pipeline(seed, pretrained).save_pretrained(out, safe_serialization=True)
    return out
