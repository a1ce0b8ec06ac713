"""memctl retrain / report."""

from __future__ import annotations

import dataclasses
import json
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
)
from memctl.cli.output import emit
from memctl.config import Config, config_from_dict
from memctl.errors import UserError


@main.command()
@config_options
@click.option("--best", is_flag=True, help="The Pareto trial with the best normalised mean.")
@click.option("--trial", "trial_number", type=int, help="A given trial of the study.")
@click.option("--mask", "mask_file", type=click.Path(dir_okay=False),
              help="mask.json from an earlier retrain or another study.")
@click.option("--study", help="Study name (default: search.study).")
@click.option("--storage", help="Storage URL (default: search.storage).")
@click.option("--gpus", type=int, default=1, show_default=True,
              help="Data-parallel ranks on this node (one per GPU; CPU processes without).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Run directory.")
@click.option("--evaluate", "then_evaluate", is_flag=True,
              help="Then run `memctl evaluate` on the result (FID, AMD, extraction attack...).")
@json_option
def retrain(cfg: Config, config_given: bool, best: bool, trial_number: int | None,
            mask_file: str | None, study: str | None, storage: str | None, gpus: int,
            out_dir: str | None, then_evaluate: bool, as_json: bool) -> None:
    """Retrain the chosen mask on the full training split; write a loadable pipeline."""
    from memctl.runs.retrain import retrain as run_retrain
    from memctl.runs.retrain import retrain_on_gpus

    if sum([best, trial_number is not None, mask_file is not None]) != 1:
        raise UserError("give exactly one of --best, --trial N, --mask FILE")
    if gpus < 1:
        raise UserError(f"--gpus: must be >= 1, got {gpus}")
    if study:
        cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, study=study))
    if storage:
        cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, storage=storage))
    if mask_file:
        bits, blocks, source, cfg = _from_mask_file(Path(mask_file), cfg)
        from memctl.workspace import prepare, proxy_set

        ws = prepare(cfg)
        dmem = proxy_set(cfg, ws.reader()).dmem_indices
        model_dir, cache_path = str(ws.model_dir), str(ws.cache_path)
        name = f"mask-{Path(mask_file).stem}"
    else:
        from memctl.search.pareto import pick
        from memctl.search.space import mask_from_params
        from memctl.search.study import load_study, storage_url

        st = load_study(cfg, storage_url(cfg))
        attrs = st.user_attrs
        if not config_given and "config" in attrs:  # retrain what was searched
            overrides = click.get_current_context().meta.get("memctl.overrides", ())
            cfg = dataclasses.replace(config_from_dict(attrs["config"], overrides),
                                      search=cfg.search)
        if best:
            try:
                chosen = pick(st)
            except ValueError as err:
                raise UserError(str(err)) from None
        else:
            matches = [t for t in st.get_trials(deepcopy=False) if t.number == trial_number]
            if not matches or matches[0].state.name != "COMPLETE":
                raise UserError(f"--trial {trial_number}: no complete trial with that number")
            chosen = matches[0]
        bits = mask_from_params(chosen.params, int(attrs["n_bits"]))
        blocks = list(attrs.get("block_names", []))
        source = f"study {st.study_name} trial {chosen.number}"
        model_dir, cache_path = attrs["model_dir"], attrs["cache_path"]
        dmem = list(attrs["dmem_indices"])
        name = f"{st.study_name}-trial{chosen.number}"
    out = Path(out_dir) if out_dir else Path(cfg.run_dir) / "retrain" / name
    console.print(f"retraining mask {''.join(map(str, bits))} ({source}) -> {out}")
    args = dict(model_dir=model_dir, cache_path=cache_path, bits=bits, dmem_indices=dmem,
                block_names=blocks, out_dir=out, source=source, command=command_line())
    if gpus > 1:
        console.print(f"{gpus} data-parallel ranks; logs under {out}/ranks")
        result = retrain_on_gpus(gpus, cfg=cfg, **args)
    else:
        with progress_bar("retrain") as update:
            result = run_retrain(cfg, **args,
                                 on_step=lambda s, n, loss: update(s, n, f"loss {loss:.4f}"))
    evaluation = None
    if then_evaluate:
        from memctl.runs.evaluate import evaluate as run_evaluate

        with phase_status("evaluating") as phase:
            evaluation = run_evaluate(result.out_dir, eval_cfg=cfg.eval, progress=phase)
    if as_json:
        emit_json({"out_dir": str(result.out_dir), **result.metrics,
                   **({"evaluation": evaluation} if evaluation else {})})
    else:
        m = result.metrics
        if result.reused:
            emit(f"{result.out_dir} already holds this retrain (same mask and config)")
        emit(f"done: {result.out_dir}/pipeline loads in StableDiffusionPipeline; "
                      f"test FID {m['fid_test']:.2f}, d_mem {m['d_mem']:.4f}, "
                      f"{m['trainable']:,} of {m['total']:,} U-Net parameters trained")
        if evaluation:
            from memctl.cli.compare_cmd import summary_line

            emit(summary_line("evaluation", evaluation))


def _from_mask_file(path: Path, cfg: Config) -> tuple[list[int], list[str], str, Config]:
    if not path.is_file():
        raise UserError(f"{path}: mask file not found")
    try:
        rec = json.loads(path.read_text())
        bits = [int(b) for b in str(rec["bits"])]
        method, space = rec["method"], rec["space"]
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path}: not a memctl mask file ({err})") from None
    peft = dataclasses.replace(cfg.peft, method=method, space=space,
                               always=list(rec.get("always", [])))
    return bits, list(rec.get("block_names", [])), f"mask file {path}", dataclasses.replace(
        cfg, peft=peft)


@main.command()
@config_options
@click.option("--study", help="Study name (default: search.study).")
@click.option("--storage", help="Storage URL (default: search.storage).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Output folder (default: RUN_DIR/reports/STUDY).")
@json_option
def report(cfg: Config, config_given: bool, study: str | None, storage: str | None,
           out_dir: str | None, as_json: bool) -> None:
    """Write report.html, report.md, pareto.png, trials.csv for a study."""
    from memctl.report.collect import collect
    from memctl.report.compare import collect_evaluations
    from memctl.report.render import write_report
    from memctl.search.study import load_study, mask_url, storage_url

    if study:
        cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, study=study))
    if storage:
        cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, storage=storage))
    url = storage_url(cfg)
    snap = collect(load_study(cfg, url), mask_url(url))
    out = Path(out_dir) if out_dir else Path(cfg.run_dir) / "reports" / snap.name
    comparison = collect_evaluations(Path(cfg.run_dir))
    paths = write_report(snap, out, comparison)
    if as_json:
        emit_json({k: str(v) for k, v in paths.items()})
    else:
        extra = (f", comparison of {len(comparison)} model{'s' if len(comparison) > 1 else ''}"
                 if comparison else "")
        emit(f"report: {paths['report.html']} (also report.md, trials.csv{extra})")
