"""memctl worker: what each search job runs (hidden; not for people)."""

from __future__ import annotations

import click

from memctl.cli import main
from memctl.cli.common import config_options, emit_json
from memctl.config import Config


@main.command(hidden=True)
@config_options
@click.option("--storage", required=True, help="Storage URL of the study.")
@click.option("--study", required=True, help="Study name.")
@click.option("--trials", type=int, required=True,
              help="Complete trials the study should hold.")
@click.option("--index", type=int, default=None,
              help="Worker index (default: SLURM_ARRAY_TASK_ID or 0); seeds the sampler.")
def worker(cfg: Config, config_given: bool, storage: str, study: str, trials: int,
           index: int | None) -> None:
    """Run trials of an existing study until it is full (what each job runs)."""
    import os

    from memctl.search.lookup import worker_setup
    from memctl.search.worker import WorkerSpec, run_worker

    cfg, ctx = worker_setup(cfg, storage, study)
    if index is None:
        index = int(os.environ.get("SLURM_ARRAY_TASK_ID", "0"))
    summary = run_worker(WorkerSpec(cfg.to_dict(), storage, ctx, trials, index))
    emit_json(summary)
