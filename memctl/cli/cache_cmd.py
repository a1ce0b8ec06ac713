"""memctl model / data / cache / init: build and inspect inputs."""

from __future__ import annotations

from pathlib import Path

import click

from memctl.cli import main
from memctl.cli.common import config_options, console, emit_json, json_option, progress_bar
from memctl.cli.output import emit
from memctl.config import Config
from memctl.errors import UserError


@main.group()
def model() -> None:
    """Model directories (diffusers format)."""


@model.command("tiny")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--random-init", "seed", type=int, default=None, metavar="SEED",
              help="Write the untrained architecture with this seed instead of the shipped "
                   "pretrained weights (what memctl.models.pretrain starts from).")
def model_tiny(out_dir: str, seed: int | None) -> None:
    """Write the embedded tiny SD-architecture pipeline to OUT_DIR.

    Example: memctl model tiny ./tiny && python -c "from diffusers import
    StableDiffusionPipeline as P; P.from_pretrained('./tiny')"
    """
    from memctl.models.tiny import write_tiny_model

    path = write_tiny_model(out_dir, seed or 0, pretrained=seed is None)
    console.print(f"wrote embedded model to {path}"
                  + (" (pretrained weights)" if seed is None else f" (random init, seed {seed})"))


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


@main.group()
def cache() -> None:
    """The HDF5 cache of latents and text embeddings."""


@cache.command("build")
@config_options
def cache_build(cfg: Config, config_given: bool) -> None:
    """Encode the dataset once (resumable); prints the cache path."""
    from memctl.workspace import prepare

    with progress_bar("caching") as update:
        ws = prepare(cfg, progress=update)
    info = ws.reader().info()
    emit(f"cache {ws.cache_path}: {info['usable']}/{info['images']} images, "
                  f"{info['unique_captions']} captions, splits {info['splits']}")
    if info["skipped"]:
        console.print(f"[yellow]{len(info['skipped'])} skipped[/] (see `memctl cache info`)")


@cache.command("info")
@config_options
@json_option
def cache_info(cfg: Config, config_given: bool, as_json: bool) -> None:
    """Show what the cache of this config holds, including skipped files and why."""
    from memctl.workspace import cache_info as read_info

    info = read_info(cfg)
    if not info.get("written", True):
        console.print(f"[yellow]no cache written[/]: the last build found no usable image "
                      f"({len(info['skipped'])} skipped)")
    if as_json:
        emit_json(info)
        return
    for key, value in info.items():
        if key != "skipped":
            emit(f"{key:>18}: {value}")
    emit(f"{'skipped':>18}: {len(info['skipped'])}")
    for row in info["skipped"]:
        emit(f"  {row['path']}: {row['reason']}")


@main.command("init")
@click.argument("path", default="memctl.yaml", type=click.Path(dir_okay=False))
def init(path: str) -> None:
    """Write a starter config (the embedded defaults, every field listed) to PATH."""
    from memctl.config import dump_config

    p = Path(path)
    if p.exists():
        raise UserError(f"{p}: already exists (not overwritten)")
    dump_config(Config(), p, f"memctl search -c {p}", comments=True)
    console.print(f"wrote {p}; set model.path and data.path for your site, then "
                  f"`memctl cache build -c {p}`")
