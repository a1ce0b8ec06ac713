"""memctl evaluate: the comparison table's scores (FID, AMD, text-image score, extraction
attack) for a retrained run directory."""

from __future__ import annotations

from pathlib import Path

import click

from memctl.cli import main
from memctl.cli.common import emit_json, json_option, phase_status, setup_logging, summary_line
from memctl.cli.output import emit


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("overrides", nargs=-1, metavar="[SECTION.FIELD=VALUE]...")
@json_option
def evaluate(run_dir: str, overrides: tuple[str, ...], as_json: bool) -> None:
    """Score a retrained run directory: FID, AMD, text-image score, extraction attack, d_mem.

    Uses the run's own config.yaml (overrides such as eval.extraction_generations=500 apply on
    top) and writes RUN_DIR/evaluation.json.
    """
    from memctl.runs.evaluate import evaluate as run_evaluate

    setup_logging()
    with phase_status("evaluating") as phase:
        ev = run_evaluate(Path(run_dir), overrides, progress=phase)
    if as_json:
        emit_json(ev)
    else:
        emit(summary_line(run_dir, ev))
        emit(f"written: {run_dir}/evaluation.json")
