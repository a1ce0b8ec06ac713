"""Writes report.html (self-contained), report.md, pareto.png, trials.csv and trials.json."""

from __future__ import annotations

import base64
import csv
import dataclasses
import json
import os
from pathlib import Path

import jinja2

from memctl.report import figures
from memctl.report.collect import StudySnapshot, TrialRow
from memctl.report.compare import EvaluationRow
from memctl.report.provenance import config_yaml, masked, provenance

# More trials than this are listed in trials.csv only: the page stays quick to open.
MAX_TABLE_ROWS = 500

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("memctl.report", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    keep_trailing_newline=True,
)


def _write(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data if isinstance(data, bytes) else data.encode())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _write_csv(path: Path, rows: list, row_type: type) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[f.name for f in dataclasses.fields(row_type)])
        writer.writeheader()
        writer.writerows(dataclasses.asdict(r) for r in rows)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _mark_pick(snap: StudySnapshot, comparison: list[EvaluationRow]) -> list[EvaluationRow]:
    pick = next((r for r in snap.rows if r.picked), None)
    if pick is None or not pick.mask:
        return comparison
    return [dataclasses.replace(c, picked=c.mask == pick.mask and c.method == pick.method)
            for c in comparison]


def write_report(snap: StudySnapshot, out_dir: Path,
                 comparison: list[EvaluationRow] | None = None,
                 panels: list[dict] | None = None) -> dict[str, Path]:
    """`comparison`: evaluated retrains and baselines (memctl evaluate / baselines), if any;
    `panels`: nearest-training-image pairs per model (only with --include-images)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(out_dir, 0o700)
    comparison = _mark_pick(snap, comparison or [])
    pngs = {"pareto": figures.pareto_scatter(snap, comparison),
            "hypervolume": figures.hypervolume_history(snap),
            "timeline": figures.trials_over_time(snap)}
    front = sorted(snap.front, key=lambda r: (r.d_mem or 0.0, r.fid or 0.0))
    failed = [r for r in snap.rows if r.state == "FAIL"]
    ctx = dict(s=snap, front=front, failed=failed, comparison=comparison,
               png={k: base64.b64encode(v).decode() for k, v in pngs.items()},
               panels=panels or [], max_rows=MAX_TABLE_ROWS,
               provenance=provenance(snap), config_yaml=config_yaml(snap))
    paths = {name: out_dir / name for name in
             ("report.html", "report.md", "pareto.png", "hypervolume.png",
              "trials_over_time.png", "trials.csv", "trials.json")}
    _write(paths["pareto.png"], pngs["pareto"])
    _write(paths["hypervolume.png"], pngs["hypervolume"])
    _write(paths["trials_over_time.png"], pngs["timeline"])
    _write(paths["report.html"], _ENV.get_template("report.html.j2").render(**ctx))
    _write(paths["report.md"], _ENV.get_template("report.md.j2").render(**ctx))
    _write_csv(paths["trials.csv"], snap.rows, TrialRow)
    if comparison:
        paths["comparison.csv"] = out_dir / "comparison.csv"
        _write_csv(paths["comparison.csv"], comparison, EvaluationRow)
    rows = [dataclasses.asdict(r) for r in snap.rows]
    summary = {k: v for k, v in dataclasses.asdict(snap).items() if k != "rows"}
    summary["config"] = masked(summary["config"])
    _write(paths["trials.json"], json.dumps({**summary, "trials": rows}, indent=2, default=str))
    return paths
