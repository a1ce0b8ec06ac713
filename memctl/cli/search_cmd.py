"""memctl search."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from memctl.cli import main
from memctl.cli.common import (
    apply_flags,
    config_options,
    console,
    emit_json,
    json_option,
    progress_bar,
)
from memctl.cli.output import emit
from memctl.config import EXECUTORS, METHODS, SPACES, Config
from memctl.errors import UserError

if TYPE_CHECKING:
    pass

def _parse_bits(text: str) -> list[int]:
    bits = text.replace(",", "").strip()
    if not bits or set(bits) - {"0", "1"}:
        raise UserError(f"--enqueue {text!r}: expected a string of 0/1 bits")
    return [int(b) for b in bits]


@main.command()
@config_options
@click.option("--trials", type=int, help="Complete trials the study should hold.")
@click.option("--workers", type=int, help="Worker jobs (a SLURM array of this size).")
@click.option("--partition", help="SLURM partition.")
@click.option("--executor", type=click.Choice(EXECUTORS),
              help="Where workers run: slurm (a job array), local (processes here), debug "
                   "(in this process).")
@click.option("--storage", help="SQLAlchemy URL or *.journal file (default: sqlite in run_dir).")
@click.option("--study", help="Study name.")
@click.option("--space", type=click.Choice(SPACES),
              help="Bit layout: one bit per U-Net transformer block (blocks16), two per "
                   "block: self- and cross-attention (attn32), or the official code's "
                   "13 slots (paper13).")
@click.option("--method", type=click.Choice(METHODS),
              help="PEFT method trained in the blocks a mask selects.")
@click.option("--container", help="Apptainer image every job runs in.")
@click.option("--enqueue", multiple=True, help="Extra mask to evaluate first, e.g. 1010...")
@click.option("--follow/--detach", default=True, show_default=True,
              help="Follow progress until done, or return after submitting.")
@json_option
def search(cfg: Config, config_given: bool, enqueue: tuple[str, ...], follow: bool,
           as_json: bool, **flags) -> None:
    """Search masks with NSGA-II; each worker job runs trials of one shared study."""
    from memctl.search.head import run_search
    from memctl.search.study import check_reachable, storage_url

    cfg = apply_flags(cfg, **flags)
    masks = [_parse_bits(m) for m in enqueue]
    check_reachable(storage_url(cfg))  # an unreachable database is the only line printed
    console.print(f"study [bold]{cfg.search.study}[/]: {cfg.search.trials} trials, "
                  f"{cfg.search.workers} workers ({cfg.search.executor}), "
                  f"method {cfg.peft.method}/{cfg.peft.space}")
    with progress_bar("caching") as cache_update, progress_bar("trials") as trial_update:
        def on_poll(c) -> None:
            trial_update(c.complete, cfg.search.trials,
                         f"running {c.running}, failed {c.failed}")

        result = run_search(cfg, follow=follow, enqueue=masks, progress=cache_update,
                            on_poll=on_poll)
    summary = {"study": result.study, "storage": result.storage, "jobs": result.job_ids,
               "complete": result.counts.complete, "failed": result.counts.failed,
               "running": result.counts.running, "worker_errors": result.worker_errors,
               "job_folder": result.submitit_folder,
               "report": f"{cfg.run_dir}/reports/{result.study}"}
    if as_json:
        emit_json(summary)
    else:
        verb = "finished" if follow else "submitted"
        emit(f"search {verb}: {result.counts.complete} complete, {result.counts.failed} "
             f"failed; study {result.study!r} in {result.storage}")
        for err in result.worker_errors:
            emit(f"worker error {err}")
        console.print(f"next: `memctl status`, `memctl retrain --best`, `memctl report` "
                      f"(writes {summary['report']}/report.html)")
