"""The comparison table: every evaluated retrain and baseline under a run directory."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from memctl.config import MITIGATIONS
from memctl.runs.baselines import METHOD_NAMES, TABLE1_METHODS

# The paper's order: Table 1's methods, then the others.
ORDER = tuple(dict.fromkeys((*TABLE1_METHODS, *METHOD_NAMES)))


@dataclass
class EvaluationRow:
    name: str
    kind: str  # "retrain" (a searched or given mask) or "baseline"
    method: str
    mitigation: str
    mask: str
    trainable: int | None
    total: int | None
    """U-Net parameters; trainable / total is the trained fraction."""
    fid: float
    amd: float
    text_image: float | None
    text_image_name: str
    text_image_reason: str
    """Why the text-image score is missing, when it is."""
    extracted: int
    extracted_images: int | None
    """Distinct training images a clique member replays (None: evaluated before counted)."""
    memorised: int
    attack: str
    """The attack's settings: prompt set, generations per prompt, clique size, threshold."""
    prompts: int
    d_mem: float
    same_as: str | None = None
    """The run this one equals (trained once, shown under both names)."""
    picked: bool = False
    """Trains the search's picked mask with its method (MemControl's row)."""

    @property
    def fraction(self) -> float | None:
        return self.trainable / self.total if self.trainable is not None and self.total else None


def _attack(ex: dict) -> str:
    if "clique_size" not in ex:
        return ""
    return (f"{ex.get('attack_prompts', 'dmem')} prompts, {ex['generations_per_prompt']} "
            f"generations, clique {ex['clique_size']}, l2 {ex['extraction_threshold']}")


def _row(path: Path, kind: str) -> EvaluationRow | None:
    try:
        ev = json.loads(path.read_text())
        ex, ti = ev["extraction"], ev["text_image"]
        return EvaluationRow(
            name=path.parent.name, kind=kind, method=ev["method"], mitigation=ev["mitigation"],
            mask=str(ev.get("mask", "")), trainable=ev.get("trainable"), total=ev.get("total"),
            fid=ev["fid_test"], amd=ev["amd"], text_image=ti["value"],
            text_image_name=ti["name"], text_image_reason=str(ti.get("reason") or ""),
            extracted=ex["n_extracted"], extracted_images=ex.get("n_extracted_images"),
            memorised=ex["n_memorised"], attack=_attack(ex), prompts=ex["prompts"],
            d_mem=ev["d_mem"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # half-written or foreign file: the table shows what is complete


def _same_as(path: Path) -> EvaluationRow | None:
    """A baseline trained once under another name, shown under its own."""
    try:
        same = json.loads(path.read_text())["same_as"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    row = _row(path.parent.parent / str(same) / "evaluation.json", "baseline")
    return dataclasses.replace(row, name=path.parent.name, same_as=str(same)) if row else None


def _paper_order(row: EvaluationRow) -> tuple[int, int, str]:
    method = row.name.split("-")[0]
    return (ORDER.index(method) if method in ORDER else len(ORDER),
            MITIGATIONS.index(row.mitigation) if row.mitigation in MITIGATIONS else 0, row.name)


def collect_evaluations(run_dir: Path) -> list[EvaluationRow]:
    """Retrained masks first (by name), then the baselines by method and mitigation."""
    rows = [_row(p, "retrain") for p in sorted(run_dir.glob("retrain/*/evaluation.json"))]
    base = [_row(p, "baseline") for p in run_dir.glob("baselines/*/evaluation.json")]
    base += [_same_as(p) for p in run_dir.glob("baselines/*/same_as.json")]
    return [r for r in rows if r is not None] + sorted((r for r in base if r is not None),
                                                         key=_paper_order)
