"""The comparison table: every evaluated retrain and baseline under a run directory."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from memctl.runs.baselines import BASELINES


@dataclass
class EvaluationRow:
    name: str
    kind: str  # "retrain" (a searched or given mask) or "baseline"
    method: str
    mitigation: str
    mask: str
    trainable: int | None
    fid: float
    amd: float
    text_image: float | None
    text_image_name: str
    extracted: int
    memorised: int
    prompts: int
    d_mem: float


def _row(path: Path, kind: str) -> EvaluationRow | None:
    try:
        ev = json.loads(path.read_text())
        ex, ti = ev["extraction"], ev["text_image"]
        return EvaluationRow(
            name=path.parent.name, kind=kind, method=ev["method"], mitigation=ev["mitigation"],
            mask=str(ev.get("mask", "")), trainable=ev.get("trainable"), fid=ev["fid_test"],
            amd=ev["amd"], text_image=ti["value"], text_image_name=ti["name"],
            extracted=ex["n_extracted"], memorised=ex["n_memorised"], prompts=ex["prompts"],
            d_mem=ev["d_mem"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # half-written or foreign file: the table shows what is complete


def collect_evaluations(run_dir: Path) -> list[EvaluationRow]:
    """Retrained masks first (by name), then the baselines in the paper's order."""
    order = {name: i for i, name in enumerate(BASELINES)}
    rows = [_row(p, "retrain") for p in sorted(run_dir.glob("retrain/*/evaluation.json"))]
    rows += sorted((_row(p, "baseline") for p in run_dir.glob("baselines/*/evaluation.json")),
                   key=lambda r: order.get(r.name, len(order)) if r else len(order))
    return [r for r in rows if r is not None]
