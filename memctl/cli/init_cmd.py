"""memctl init: a starter config."""

from __future__ import annotations

from pathlib import Path

import click

from memctl.cli import main
from memctl.cli.common import console
from memctl.config import Config
from memctl.errors import UserError


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
