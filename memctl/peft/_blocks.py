"""Where the maskable blocks and the `always` groups are, read from the model's structure.

A block is the BasicTransformerBlock(s) in `.transformer_blocks` of one Transformer2DModel,
found by walking down_blocks[i].attentions[j], mid_block.attentions, up_blocks[i].attentions[j]:
SD v1.5 and a small SD-architecture model both have 16, with nothing hard-coded.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from memctl.peft._target import join


def transformer_models(unet: nn.Module) -> list[str]:
    """Paths of the Transformer2DModels, in down, mid, up order."""
    paths: list[str] = []
    for i, block in enumerate(unet.down_blocks):
        paths += [f"down_blocks.{i}.attentions.{j}" for j in range(_n_attn(block))]
    if getattr(unet, "mid_block", None) is not None:
        paths += [f"mid_block.attentions.{j}" for j in range(_n_attn(unet.mid_block))]
    for i, block in enumerate(unet.up_blocks):
        paths += [f"up_blocks.{i}.attentions.{j}" for j in range(_n_attn(block))]
    return paths


def transformer_blocks(unet: nn.Module, t2d_path: str) -> list[str]:
    """Paths of the BasicTransformerBlocks of one Transformer2DModel (the maskable unit)."""
    t2d = unet.get_submodule(t2d_path)
    return [f"{t2d_path}.transformer_blocks.{k}" for k in range(len(t2d.transformer_blocks))]


def _n_attn(block: nn.Module) -> int:
    return _n(block, "attentions")


def _n(block: nn.Module, attr: str) -> int:
    return len(getattr(block, attr, None) or [])


def _t2d_proj_norm(unet):
    return [
        join(p, name)
        for p in transformer_models(unet)
        for name in ("norm", "proj_in", "proj_out")
        if hasattr(unet.get_submodule(p), name)
    ]


def _children_named(attr: str) -> Callable[[nn.Module], list[str]]:
    def paths(unet):
        found = []
        for level in ("down_blocks", "up_blocks"):
            for i, block in enumerate(getattr(unet, level)):
                found += [f"{level}.{i}.{attr}.{j}" for j in range(_n(block, attr))]
        mid = getattr(unet, "mid_block", None)
        if mid is not None:
            found += [f"mid_block.{attr}.{j}" for j in range(_n(mid, attr))]
        return found

    return paths


def _present(*names: str) -> Callable[[nn.Module], list[str]]:
    return lambda unet: [n for n in names if getattr(unet, n, None) is not None]


# Groups a caller may name in `always`: trained with the method's parametrisation whatever the
# mask. Everything else outside the mask stays frozen.
ALWAYS: dict[str, Callable[[nn.Module], list[str]]] = {
    "t2d_proj_norm": _t2d_proj_norm,  # each Transformer2DModel's GroupNorm, proj_in, proj_out
    "resnets": _children_named("resnets"),
    "samplers": lambda u: _children_named("downsamplers")(u) + _children_named("upsamplers")(u),
    "time_embedding": _present("time_embedding", "class_embedding", "add_embedding"),
    "io": _present("conv_in", "conv_norm_out", "conv_out"),
}
