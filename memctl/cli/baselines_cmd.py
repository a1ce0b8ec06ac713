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
from memctl.config import EXECUTORS, MITIGATIONS, Config
from memctl.runs.baselines import TABLE1_METHODS


@main.command()
@config_options
@click.option("--methods", default=",".join(TABLE1_METHODS), show_default=True,
              help="Comma-separated methods: freeze, full, a PEFT method on every block "
                   "(svdiff, difffit, attention, lora; `peft`: the config's method), "
                   "memcontrol (the study's pick).")
@click.option("--mitigations", default=",".join(MITIGATIONS), show_default=True,
              help="Comma-separated mitigations each method is trained with (freeze "
                   "trains nothing: it is run once and shown under each).")
@click.option("--no-evaluate", is_flag=True, help="Retrain only; run `memctl evaluate` later.")
@click.option("--executor", type=click.Choice(EXECUTORS),
              help="Run the grid as one job array, a task per run that trains its own "
                   "model: slurm (on the cluster), local (subprocesses here), debug (in this "
                   "process). Default: one run after another in this process.")
@click.option("--partition", help="SLURM partition (with --executor slurm).")
@click.option("--follow/--detach", default=True, show_default=True,
              help="With --executor: wait for the jobs and print the results, or return "
                   "after submitting (`memctl report` tabulates the runs as they finish).")
@json_option
def baselines(cfg: Config, config_given: bool, methods: str, mitigations: str,
              no_evaluate: bool, executor: str | None, partition: str | None, follow: bool,
              as_json: bool) -> None:
    """Retrain and evaluate the paper's baselines (Table 1): each method crossed with each
    mitigation, skipping runs already complete. Results land in RUN_DIR/baselines/NAME/."""
    from memctl.errors import UserError
    from memctl.runs.baselines import PICK, baseline_grid, run_baselines

    try:
        grid = baseline_grid(_split(methods), _split(mitigations), cfg.peft.method)
    except ValueError as err:
        raise UserError(str(err)) from None
    pick = None
    if any(b.method == PICK for b in grid):
        from memctl.search.lookup import study_target

        try:
            pick = study_target(cfg, None, config_given)
        except UserError as err:
            raise UserError(f"--methods memcontrol: {err} (or leave memcontrol out)") from None
    if partition:
        from memctl.cli.common import apply_flags

        cfg = apply_flags(cfg, partition=partition)
    if executor:
        _on_executor(cfg, grid, executor, not no_evaluate, pick, follow, as_json)
        return
    with phase_status("baselines") as phase:
        results = run_baselines(
            cfg, grid, command_line(), evaluate_too=not no_evaluate,
            on_stage=lambda name, msg: phase(f"{name}: {msg}"), on_step=_step_progress(phase),
            pick=pick)
    _print_results(results, cfg, as_json)


def _on_executor(cfg: Config, grid: list, executor: str, evaluate_too: bool, pick,
                 follow: bool, as_json: bool) -> None:
    from memctl.runs.baseline_jobs import submit_baselines

    with phase_status("baselines") as phase:
        sub = submit_baselines(cfg, grid, command_line(), executor=executor,
                               evaluate_too=evaluate_too, pick=pick, follow=follow,
                               on_progress=phase)
    if not follow:
        if as_json:
            emit_json({"job_ids": sub.job_ids, "same_as": sub.same_as, "folder": sub.folder})
            return
        for name, job in sub.job_ids.items():
            emit(f"{name}: job {job}")
        for name, same in sub.same_as.items():
            emit(f"{name}: the same run as {same}")
        emit(f"logs under {sub.folder}; `memctl report` tabulates the runs as they finish")
        return
    _print_results(sub.results, cfg, as_json)
    for name, err in sub.errors.items():  # a failed run is not bad input: exit 1
        click.echo(f"memctl: {name} (job {sub.job_ids[name]}) failed: {err}", err=True)
    if sub.errors:
        click.echo(f"memctl: logs under {sub.folder}", err=True)
        raise SystemExit(1)


def _print_results(results: dict[str, dict], cfg: Config, as_json: bool) -> None:
    if as_json:
        emit_json(results)
        return
    for name, res in results.items():
        same = f" (same run as {res['same_as']})" if "same_as" in res else ""
        if "extraction" in res:
            emit(summary_line(name, res) + same)
        else:
            emit(f"{name}: retrained, test FID {res.get('fid_test', float('nan')):.2f}{same}")
    emit(f"under {Path(cfg.run_dir) / 'baselines'}; `memctl report` tabulates them")


def _split(names: str) -> list[str]:
    return [n.strip() for n in names.split(",") if n.strip()]


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
