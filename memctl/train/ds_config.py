"""The DeepSpeed config dict: generated from TrainConfig, optionally merged with a JSON file.

The generated part covers what memctl decides (batch sizes, accumulation, precision, ZeRO
stage, clipping, AdamW); a JSON from `train.deepspeed_config` is merged over it for tuning
(bucket sizes, overlap). The batch keys belong to the loop, which does the batching: a JSON
that disagrees with them is an error, not silently ignored.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from memctl.config import TrainConfig
from memctl.errors import UserError
from memctl.train.extensions import source_checkout

_LOOP_KEYS = ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size")


def resolve_json(spec: str) -> Path:
    """A path, or a bare name looked up in <repo>/configs/deepspeed/ ("zero2" or "zero2.json")."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    root = source_checkout()
    if root is not None and path.parent == Path("."):
        for name in (path.name, f"{path.name}.json"):
            candidate = root / "configs" / "deepspeed" / name
            if candidate.is_file():
                return candidate
    raise UserError(f"train.deepspeed_config: {spec}: file not found")


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def generated(cfg: TrainConfig, world_size: int, device: torch.device) -> dict:
    optimizer_params: dict = {"lr": cfg.lr, "weight_decay": cfg.weight_decay, "torch_adam": True}
    return {
        "train_micro_batch_size_per_gpu": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "train_batch_size": cfg.batch_size * cfg.grad_accum * world_size,
        "gradient_clipping": cfg.grad_clip,
        # torch_adam: torch's AdamW instead of FusedAdam/cpu_adam, each a multi-minute JIT build
        "optimizer": {"type": "AdamW", "params": optimizer_params},
        "bf16": {"enabled": cfg.precision == "bf16"},
        "zero_optimization": {"stage": cfg.zero_stage},
        "steps_per_print": 1 << 30,
        "wall_clock_breakdown": False,
        "zero_allow_untested_optimizer": True,
    }


def build(cfg: TrainConfig, world_size: int, device: torch.device) -> dict:
    config = generated(cfg, world_size, device)
    if not cfg.deepspeed_config:
        return config
    path = resolve_json(cfg.deepspeed_config)
    try:
        extra = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"train.deepspeed_config: {path}: invalid JSON: {err}") from None
    if not isinstance(extra, dict):
        raise UserError(f"train.deepspeed_config: {path}: top level must be an object")
    for key in _LOOP_KEYS:
        if key in extra and extra[key] != config[key]:
            raise UserError(f"train.deepspeed_config: {path}: {key}={extra[key]} disagrees with "
                            f"train.batch_size/grad_accum ({config[key]}); drop it from the file")
    return _merge(config, extra)


def precision_of(config: dict) -> str:
    return "bf16" if config.get("bf16", {}).get("enabled") else "fp32"
