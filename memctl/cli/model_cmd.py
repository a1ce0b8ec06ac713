"""memctl model tiny: the embedded model as a diffusers directory."""

from __future__ import annotations

import click

from memctl.cli import main
from memctl.cli.common import console


@main.group()
def model() -> None:
    """Model directories (diffusers format)."""


@model.command("tiny")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--random-init", "seed", type=int, default=None, metavar="SEED",
              help="Write the untrained architecture with this seed instead of the shipped "
                   "pretrained weights (what memctl.models.pretrain starts from).")
def model_tiny(out_dir: str, seed: int | None) -> None:
    """Write the embedded tiny SD-architecture pipeline to OUT_DIR (loads in a stock
    diffusers StableDiffusionPipeline.from_pretrained)."""
    from memctl.models.tiny import write_tiny_model

    path = write_tiny_model(out_dir, seed or 0, pretrained=seed is None)
    console.print(f"wrote embedded model to {path}"
                  + (" (pretrained weights)" if seed is None else f" (random init, seed {seed})"))
