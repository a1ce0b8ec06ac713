"""Recognising diffusers layers by shape of their API, not by class (classes move between
diffusers releases)."""

from __future__ import annotations

from torch import nn

NORMS = (nn.LayerNorm, nn.GroupNorm)


def is_attention(m: nn.Module) -> bool:
    return all(hasattr(m, a) for a in ("to_q", "to_k", "to_v", "to_out"))


def attention_projections(attn: nn.Module) -> dict[str, nn.Linear]:
    """q, k, v, out projections of a diffusers Attention, by their attribute path."""
    return {"to_q": attn.to_q, "to_k": attn.to_k, "to_v": attn.to_v, "to_out.0": attn.to_out[0]}


def is_transformer_model(m: nn.Module) -> bool:
    return hasattr(m, "transformer_blocks")


def is_transformer_block(m: nn.Module) -> bool:
    return all(hasattr(m, a) for a in ("attn1", "ff", "norm1"))
