"""memctl baselines: the paper's comparison models, retrained and evaluated."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from memctl.cli import main
from memctl.cli.common import (
    ProgressLines,
    command_line,
    config_options,
    console,
    emit_json,
    json_option,
    phase_status,
    summary_line,
)
from memctl.cli.output import emit
from memctl.config import Config


@main.command()
@config_options
@click.option("--only", default="freeze,full,peft,rwa,threshold",
              show_default=True, help="Comma-separated baselines to run.")
@click.option("--no-evaluate", is_flag=True, help="Retrain only; run `memctl evaluate` later.")
@json_option
def baselines(cfg: Config, config_given: bool, only: str, no_evaluate: bool,
              as_json: bool) -> None:
    """Retrain and evaluate the paper's baselines: the frozen pretrained model, full
    fine-tuning, vanilla PEFT, random word addition, threshold mitigation. Results land in
    RUN_DIR/baselines/NAME/."""
    from memctl.errors import UserError
    from memctl.runs.baselines import BASELINES, run_baselines

    names = tuple(n.strip() for n in only.split(",") if n.strip())
    unknown = [n for n in names if n not in BASELINES]
    if unknown or not names:
        raise UserError(f"--only: unknown baseline {', '.join(unknown) or '(none given)'}; "
                        f"choose from {', '.join(BASELINES)}")
    with phase_status("baselines") as phase:
        results = run_baselines(
            cfg, names, command_line(), evaluate_too=not no_evaluate,
            on_stage=lambda name, msg: phase(f"{name}: {msg}"), on_step=_step_progress(phase))
    if as_json:
        emit_json(results)
        return
    for name, res in results.items():
        if "extraction" in res:
            emit(summary_line(name, res))
        else:
            emit(f"{name}: retrained, test FID {res.get('fid_test', float('nan')):.2f}")
    emit(f"under {Path(cfg.run_dir) / 'baselines'}; `memctl report` tabulates them")


def _step_progress(phase: Callable[[str], None]) -> Callable[[str, int, int, float], None]:
    """Training steps on the spinner on a terminal; off one, progress lines per baseline."""
    lines: dict[str, ProgressLines] = {}

    def step(name: str, done: int, total: int, loss: float) -> None:
        if console.is_terminal:
            phase(f"{name}: training, step {done}/{total}, loss {loss:.4f}")
        else:
            lines.setdefault(name, ProgressLines(f"baselines: {name}"))(
                done, total, f"loss {loss:.4f}")

    return step
