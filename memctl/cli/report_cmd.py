"""memctl report."""

from __future__ import annotations

from pathlib import Path

import click

from memctl.cli import main
from memctl.cli.common import config_options, emit_json, json_option
from memctl.cli.output import emit
from memctl.config import Config


@main.command()
@config_options
@click.option("--study", help="Study name (default: search.study).")
@click.option("--storage", help="Storage URL (default: search.storage).")
@click.option("--method", help="Of a global search, only this method's study.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Output folder (default: RUN_DIR/reports/STUDY).")
@click.option("--include-images", is_flag=True,
              help="Add each evaluated model's generations beside their nearest training "
                   "images (the report then holds training data).")
@json_option
def report(cfg: Config, config_given: bool, study: str | None, storage: str | None,
           method: str | None, out_dir: str | None, include_images: bool,
           as_json: bool) -> None:
    """Write report.html, report.md, pareto.png, trials.csv for a study (of a global search:
    its methods' studies, one union front)."""
    from memctl.report.collect import collect
    from memctl.report.compare import collect_evaluations
    from memctl.report.render import write_report
    from memctl.search.lookup import open_studies, with_study

    cfg = with_study(cfg, study, storage)
    studies, url = open_studies(cfg, method)
    snap = collect(studies, url, name=cfg.search.study if len(studies) > 1 else None)
    out = Path(out_dir) if out_dir else Path(cfg.run_dir) / "reports" / snap.name
    comparison = collect_evaluations(Path(cfg.run_dir))
    panels = None
    if include_images:
        from memctl.report.panels import nearest_panels

        panels = nearest_panels(Path(cfg.run_dir), comparison)
    paths = write_report(snap, out, comparison, panels)
    if as_json:
        emit_json({k: str(v) for k, v in paths.items()})
    else:
        extra = (f", comparison of {len(comparison)} model{'s' if len(comparison) > 1 else ''}"
                 if comparison else "")
        emit(f"report: {paths['report.html']} (also report.md, trials.csv{extra})")
