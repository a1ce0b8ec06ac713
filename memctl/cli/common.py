"""Shared CLI pieces: config loading options, JSON output, rich progress."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from memctl.cli.output import emit
from memctl.config import Config, load_config

console = Console(stderr=True)


def offline_env() -> None:
    """Offline mode and quiet HF libraries, set before anything imports them. Only the
    environment: importing torch or diffusers here would cost seconds on every command,
    even one whose config is rejected; memctl.models.load finishes the job when it loads."""
    for key, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"),
                       ("DIFFUSERS_VERBOSITY", "error"), ("TRANSFORMERS_VERBOSITY", "error"),
                       ("HF_HUB_DISABLE_PROGRESS_BARS", "1")):
        os.environ.setdefault(key, value)


def setup_logging(verbose: bool = False) -> None:
    offline_env()
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False)], force=True)
    for noisy in ("DeepSpeed", "urllib3", "matplotlib", "PIL", "h5py"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def config_options(func: Callable) -> Callable:
    """-c CONFIG plus trailing `section.field=value` overrides; passes `cfg`."""

    @click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
                  help="YAML config (default: the embedded tiny setup).")
    @click.argument("overrides", nargs=-1, metavar="[SECTION.FIELD=VALUE]...")
    @functools.wraps(func)
    def wrapper(*args: Any, config_path: str | None, overrides: tuple[str, ...], **kwargs: Any):
        setup_logging()
        click.get_current_context().meta["memctl.overrides"] = overrides
        cfg = load_config(config_path, overrides)
        return func(*args, cfg=cfg, config_given=bool(config_path), **kwargs)

    return wrapper


def json_option(func: Callable) -> Callable:
    """--json: the command's results as JSON on stdout, for scripts."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print the results as JSON on stdout (logs stay on stderr).")(func)


def emit_json(obj: Any) -> None:
    emit(json.dumps(obj, indent=2, default=str))


@contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A rich bar driven by update(done, total) calls; silent when not a terminal or disabled."""
    if not enabled:
        yield lambda done, total: None
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=console,
                  transient=False, disable=not console.is_terminal) as prog:
        task = prog.add_task(description, total=None, info="")

        def update(done: int, total: int, info: str = "") -> None:
            prog.update(task, completed=done, total=total, info=info)

        yield update


def command_line() -> str:
    return "memctl " + " ".join(sys.argv[1:])


def cfg_summary(cfg: Config) -> str:
    return (f"method={cfg.peft.method} space={cfg.peft.space} run_dir={cfg.run_dir} "
            f"model={cfg.model.path or 'embedded tiny'} data={cfg.data.source}")
