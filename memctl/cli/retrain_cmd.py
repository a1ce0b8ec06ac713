"""memctl retrain."""

from __future__ import annotations

from pathlib import Path

import click

from memctl.cli import main
from memctl.cli.common import (
    command_line,
    config_options,
    console,
    emit_json,
    json_option,
    phase_status,
    progress_bar,
    summary_line,
)
from memctl.cli.output import emit
from memctl.config import Config
from memctl.errors import UserError


@main.command()
@config_options
@click.option("--best", is_flag=True, help="The Pareto trial with the best normalised mean.")
@click.option("--trial", "trial_number", type=int, help="A given trial of the study.")
@click.option("--mask", "mask_file", type=click.Path(),
              help="A mask file, or a folder holding one: a trial's folder "
                   "(RUN_DIR/trials/STUDY/NNNNN), a retrain, a baseline or an adapter.")
@click.option("--method", help="Of a global search, only this method's study (needed with "
                               "--trial).")
@click.option("--study", help="Study name (default: search.study).")
@click.option("--storage", help="Storage URL (default: search.storage).")
@click.option("--gpus", type=int, default=1, show_default=True,
              help="Data-parallel ranks on this node (one per GPU; CPU processes without).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Run directory.")
@click.option("--evaluate", "then_evaluate", is_flag=True,
              help="Then run `memctl evaluate` on the result (FID, AMD, extraction attack...).")
@json_option
def retrain(cfg: Config, config_given: bool, best: bool, trial_number: int | None,
            mask_file: str | None, method: str | None, study: str | None,
            storage: str | None, gpus: int,
            out_dir: str | None, then_evaluate: bool, as_json: bool) -> None:
    """Retrain the chosen mask on the full training split; write a loadable pipeline.
    --best picks over the union front of a global search."""
    from memctl.runs.retrain import retrain_target
    from memctl.runs.target import mask_file_target
    from memctl.search.lookup import study_target, with_study

    if sum([best, trial_number is not None, mask_file is not None]) != 1:
        raise UserError("give exactly one of --best, --trial N, --mask FILE")
    if gpus < 1:
        raise UserError(f"--gpus: must be >= 1, got {gpus}")
    cfg = with_study(cfg, study, storage)
    overrides = click.get_current_context().meta.get("memctl.overrides", ())
    target = (mask_file_target(Path(mask_file), cfg) if mask_file
              else study_target(cfg, trial_number, config_given, overrides, method))
    out = Path(out_dir) if out_dir else Path(target.cfg.run_dir) / "retrain" / target.name
    console.print(f"retraining mask {''.join(map(str, target.bits))} ({target.source}) -> {out}")
    if gpus > 1:
        console.print(f"{gpus} data-parallel ranks; logs under {out}/ranks")
    with progress_bar("retrain", enabled=gpus == 1) as update:
        result = retrain_target(target, out, command_line(), gpus,
                                on_step=lambda s, n, loss: update(s, n, f"loss {loss:.4f}"))
    evaluation = None
    if then_evaluate:
        from memctl.runs.evaluate import evaluate as run_evaluate

        with phase_status("evaluating") as phase:
            evaluation = run_evaluate(result.out_dir, eval_cfg=target.cfg.eval,
                                      dmem=target.cfg.search.dmem, progress=phase)
    _render(result, evaluation, as_json)


def _render(result, evaluation: dict | None, as_json: bool) -> None:
    if as_json:
        emit_json({"out_dir": str(result.out_dir), **result.metrics,
                   **({"evaluation": evaluation} if evaluation else {})})
        return
    m = result.metrics
    if result.reused:
        emit(f"{result.out_dir} already holds this retrain (same mask and config)")
    emit(f"done: {result.out_dir}/pipeline loads in StableDiffusionPipeline; "
         f"test FID {m['fid_test']:.2f}, d_mem {m['d_mem']:.4f}, "
         f"{m['trainable']:,} of {m['total']:,} U-Net parameters trained")
    if evaluation:
        emit(summary_line("evaluation", evaluation))
