"""memctl peft: inspect what a mask trains."""

from __future__ import annotations

from pathlib import Path

import click

from memctl.cli import main
from memctl.cli.common import emit_json
from memctl.cli.output import emit
from memctl.errors import UserError
from memctl.peft.registry import METHODS, SPACES


@main.group()
def peft() -> None:
    """Parameter-efficient fine-tuning masks."""


@peft.command("count")
@click.option("--model", "model_dir", help="Diffusers pipeline or unet directory (config only).")
@click.option("--arch", help="Built-in architecture instead of --model (sd15).")
@click.option("--method", required=True, help=", ".join(METHODS) + ".")
@click.option("--mask", "mask", required=True, help="Bits: 1101... or 1,1,0,1,...")
@click.option("--space", default="blocks16", show_default=True, help=", ".join(SPACES) + ".")
@click.option("--always", default="", help="Comma-separated groups that always train.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable, with per-block counts.")
def count(
    model_dir: str | None,
    arch: str | None,
    method: str,
    mask: str,
    space: str,
    always: str,
    as_json: bool,
) -> None:
    """Trainable U-Net parameters of METHOD under MASK, against the U-Net total."""
    from memctl.peft import apply, parse_bits

    unet = _shape_only_unet(model_dir, arch)
    groups = [g for g in always.split(",") if g]
    adapter = apply(unet, method, parse_bits(mask), space, groups)
    c = adapter.count()
    if as_json:
        emit_json({"method": method, "space": space, "bits": adapter.bits, "always": groups, **c})
        return
    emit(
        f"{method} / {space}: {c['trainable']:,} of {c['total']:,} U-Net parameters "
        f"trainable ({c['percent']:.4f}%)"
    )


def _shape_only_unet(model_dir: str | None, arch: str | None):
    """The U-Net on the meta device: counting needs shapes, not weights."""
    import torch
    from diffusers import UNet2DConditionModel

    from memctl.models.arch import build_unet

    if (model_dir is None) == (arch is None):
        raise UserError("peft count: give exactly one of --model DIR or --arch NAME")
    if arch is not None:
        return build_unet(arch, device="meta")
    root = Path(model_dir)
    path = root / "unet" if (root / "unet" / "config.json").is_file() else root
    if not (path / "config.json").is_file():
        raise UserError(f"--model: no U-Net config.json in {root} or {root / 'unet'}")
    config = UNet2DConditionModel.load_config(path)
    with torch.device("meta"):
        return UNet2DConditionModel.from_config(config)
