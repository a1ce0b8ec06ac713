"""memctl data synth: the built-in dataset."""

from __future__ import annotations

import click

from memctl.cli import main
from memctl.cli.common import console
from memctl.errors import UserError


@main.group()
def data() -> None:
    """Datasets."""


@data.command("synth")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--n", "n", default=240, show_default=True, help="Number of images.")
@click.option("--seed", default=0, show_default=True,
              help="Seed of the images, captions and subjects.")
def data_synth(out_dir: str, n: int, seed: int) -> None:
    """Write the built-in chest-X-ray-like dataset (PNGs + manifest.csv) to OUT_DIR."""
    from memctl.data.synth import write_synth_dataset

    if n < 1:
        raise UserError(f"--n: must be >= 1, got {n}")
    manifest = write_synth_dataset(out_dir, n=n, seed=seed)
    console.print(f"wrote {n} images and {manifest}")
