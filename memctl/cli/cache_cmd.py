"""memctl cache build / info: the HDF5 cache of latents and text embeddings."""

from __future__ import annotations

from memctl.cli import main
from memctl.cli.common import config_options, console, emit_json, json_option, progress_bar
from memctl.cli.output import emit
from memctl.config import Config


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
