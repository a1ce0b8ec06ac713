"""Shared CLI pieces: config loading options and flags, JSON output, rich progress, the
summary line of an evaluation."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from memctl.cli.output import emit, make_console
from memctl.config import Config, load_config, replace_section

console: Console = make_console(stderr=True)


def offline_env() -> None:
    """Offline mode and quiet HF libraries, set before anything imports them. Only the
    environment: importing torch or diffusers here would cost seconds on every command,
    even one whose config is rejected; memctl.models.load finishes the job when it loads."""
    for key, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"),
                       ("DIFFUSERS_VERBOSITY", "error"), ("TRANSFORMERS_VERBOSITY", "error"),
                       ("HF_HUB_DISABLE_PROGRESS_BARS", "1")):
        os.environ.setdefault(key, value)


def _log_handler() -> logging.Handler:
    """Rich's columns on a terminal; off one, plain lines: RichHandler pads every line to the
    console's width, which off a terminal is too wide to pad to (make_console)."""
    if console.is_terminal:
        handler: logging.Handler = RichHandler(console=console, show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        return handler
    handler = logging.StreamHandler(sys.stderr)  # the current stderr (CliRunner swaps it)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    return handler


def setup_logging(verbose: bool = False) -> None:
    offline_env()
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        handlers=[_log_handler()], force=True)
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


PROGRESS_ENV = "MEMCTL_PROGRESS_S"
"""Seconds between progress lines when stderr is not a terminal (default 30)."""


def progress_interval() -> float:
    try:
        return max(0.0, float(os.environ.get(PROGRESS_ENV, "30")))
    except ValueError:
        return 30.0


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class ProgressLines:
    """Progress as plain lines on stderr, for batch logs where a rich bar shows nothing:
    one every `every_s` seconds, and one at each 5% step so short work is logged too."""

    def __init__(self, description: str, every_s: float | None = None,
                 write: Callable[[str], None] | None = None) -> None:
        self.description = description
        self.every_s = progress_interval() if every_s is None else every_s
        self._write = write or (lambda line: click.echo(line, err=True))
        self._start: tuple[float, int] | None = None  # (time, done) of the first update
        self._last: tuple[float, int] | None = None  # (time, 5% bucket) of the last line

    def __call__(self, done: int, total: int, info: str = "") -> None:
        now = time.monotonic()
        if self._start is None:
            self._start = (now, done)
        bucket = 20 * done // total if total else 0
        if (self._last is not None and bucket <= self._last[1]
                and now - self._last[0] < self.every_s):
            return  # within the interval and the same 5% step
        self._last = (now, bucket)
        self._write(self._line(now, done, total, info))

    def _line(self, now: float, done: int, total: int, info: str) -> str:
        parts = [f"{self.description}: {done}/{total}" if total else
                 f"{self.description}: {done}"]
        if info:
            parts.append(info)
        start_t, start_done = self._start or (now, done)
        if total and done > start_done and done < total:
            rate = (done - start_done) / (now - start_t)
            parts.append(f"ETA {_duration((total - done) / rate)}")
        return ", ".join(parts)


@contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """A rich bar driven by update(done, total, info) calls; off a terminal, progress lines
    on stderr instead (ProgressLines); silent when disabled."""
    if not enabled:
        yield lambda done, total, info="": None
        return
    if not console.is_terminal:
        yield ProgressLines(description)
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=console,
                  transient=False) as prog:
        task = prog.add_task(description, total=None, info="")

        def update(done: int, total: int, info: str = "") -> None:
            prog.update(task, completed=done, total=total, info=info)

        yield update


@contextmanager
def phase_status(description: str) -> Iterator[Callable[[str], None]]:
    """A rich spinner showing the current phase; off a terminal, one line per phase."""
    if not console.is_terminal:
        yield lambda msg: click.echo(f"{description}: {msg}", err=True)
        return
    with console.status(description) as status:
        yield lambda msg: status.update(f"{description}: {msg}")


def command_line() -> str:
    return "memctl " + " ".join(sys.argv[1:])


# Where each flag lands in the config; every flag is validated like a config field.
_FLAG_FIELDS = {"trials": ("search", "trials"), "workers": ("search", "workers"),
                "executor": ("search", "executor"), "storage": ("search", "storage"),
                "study": ("search", "study"), "partition": ("slurm", "partition"),
                "container": ("slurm", "container"), "method": ("peft", "method"),
                "space": ("peft", "space")}


def apply_flags(cfg: Config, **flags: Any) -> Config:
    """Command-line flags win over the config file."""
    for flag, value in flags.items():
        if value is None or flag not in _FLAG_FIELDS:
            continue
        section, name = _FLAG_FIELDS[flag]
        cfg = replace_section(cfg, section, f"--{flag}", **{name: value})
    return cfg


def _images(extraction: dict) -> str:
    n = extraction.get("n_extracted_images")  # absent from evaluations before it was counted
    return "" if n is None else f", {n} training image{'s' * (n != 1)}"


def summary_line(name: str, ev: dict) -> str:
    """One line of an evaluation (memctl.runs.evaluate)."""
    ti = ev["text_image"]
    ti_text = f"{ti['name']} {ti['value']:.3f}" if ti["value"] is not None else "text-image n/a"
    ex = ev["extraction"]
    return (f"{name}: FID {ev['fid_test']:.2f}, AMD {ev['amd']:.4f}, {ti_text}, "
            f"extracted {ex['n_extracted']}/{ex['prompts']} prompts"
            f"{_images(ex)} (memorised {ex['n_memorised']}), "
            f"d_mem {ev['d_mem']:.4f}")
