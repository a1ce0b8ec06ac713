"""memctl command line: each command parses, loads config, calls one function, renders."""

from __future__ import annotations

import contextlib
import os
import sys

import click

from memctl import __version__
from memctl.cli.output import results_to
from memctl.errors import Interrupted, UserError
from memctl.train.stop import EXIT_CODE, TrainingStopped


class _Group(click.Group):
    """Turns UserError into one clear line and exit code 2; other errors exit 1; a run
    stopped by SLURM's SIGTERM says where it resumes and exits 143; Ctrl-C is one line
    and exit code 130."""

    def invoke(self, ctx: click.Context):
        # Medical data: everything memctl writes (caches, runs, reports) is owner-only.
        os.umask(0o077)
        try:
            # Libraries (DeepSpeed's logger among them) print to stdout; keep stdout for
            # results (`--json`), which emit_json writes to the real stream.
            with results_to(sys.stdout), contextlib.redirect_stdout(sys.stderr):
                return super().invoke(ctx)
        except UserError as err:
            click.echo(f"memctl: error: {err}", err=True)
            sys.exit(UserError.exit_code)
        except Interrupted as err:
            click.echo(f"memctl: {err}", err=True)
            sys.exit(Interrupted.exit_code)
        except KeyboardInterrupt:  # Ctrl-C where no clean stop is set up: no traceback
            click.echo("memctl: interrupted", err=True)
            sys.exit(Interrupted.exit_code)
        except TrainingStopped as stopped:
            then = ("the same command resumes from that step" if stopped.checkpointed
                    else "the same command starts over")
            click.echo(f"memctl: {stopped} on SIGTERM; {then}", err=True)
            sys.exit(EXIT_CODE)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="memctl")
def main() -> None:
    """MemControl: find which U-Net blocks to fine-tune so a diffusion model generates
    well without replaying its training images."""


def _register() -> None:
    # Each command family lives in its own module; importing registers it on `main`.
    from memctl.cli import commands  # noqa: F401


_register()
