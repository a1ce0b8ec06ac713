"""One read of a study into plain rows that status, figures and tables share."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import optuna
from optuna.trial import TrialState

from memctl.search.pareto import normalised_scores, pareto_front, pick


@dataclass
class TrialRow:
    number: int
    state: str
    mask: str
    d_mem: float | None
    fid: float | None
    trainable: int | None
    pareto: bool = False
    picked: bool = False
    score: float | None = None
    """Mean of min-max normalised objectives (the pick criterion); front trials only."""
    seconds: float | None = None
    error: str = ""
    node: str = ""
    slurm_job_id: str = ""
    log: str = ""


@dataclass
class StudySnapshot:
    name: str
    storage: str
    n_bits: int
    method: str
    space: str
    block_names: list[str]
    rows: list[TrialRow]
    counts: dict[str, int]
    picked: int | None
    hypervolume: float | None
    trials_per_hour: float | None
    config: dict = field(default_factory=dict)

    @property
    def front(self) -> list[TrialRow]:
        return [r for r in self.rows if r.pareto]


def _hypervolume(study: optuna.Study, complete: list) -> float | None:
    """Hypervolume of the front, objectives min-max normalised, reference point (1.1, 1.1)."""
    if len(complete) < 2:
        return None
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    vals = np.array([t.values for t in complete], dtype=float)
    lo, hi = vals.min(0), vals.max(0)
    norm = (vals - lo) / np.where(hi > lo, hi - lo, 1.0)
    return float(compute_hypervolume(norm, np.array([1.1, 1.1])))


def collect(study: optuna.Study, storage: str) -> StudySnapshot:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    front = pareto_front(study) if complete else []
    front_ids = {t.number for t in front}
    scores = ({t.number: s for t, s in zip(front, normalised_scores(front, complete), strict=True)}
              if front else {})
    picked = pick(study).number if complete else None
    rows = []
    for t in trials:
        values = t.values if t.state == TrialState.COMPLETE else None
        secs = ((t.datetime_complete - t.datetime_start).total_seconds()
                if t.datetime_complete and t.datetime_start else None)
        rows.append(TrialRow(
            number=t.number, state=t.state.name, mask=str(t.user_attrs.get("mask", "")),
            d_mem=values[0] if values else None, fid=values[1] if values else None,
            trainable=t.user_attrs.get("trainable"), pareto=t.number in front_ids,
            picked=t.number == picked, score=scores.get(t.number), seconds=secs,
            error=str(t.user_attrs.get("error", t.system_attrs.get("fail_reason", "")))
            if t.state == TrialState.FAIL else "",
            node=str(t.user_attrs.get("node", "")),
            slurm_job_id=str(t.user_attrs.get("slurm_job_id", "")),
            log=str(t.user_attrs.get("log", "")),
        ))
    counts = {s.name: 0 for s in TrialState}
    for t in trials:
        counts[t.state.name] += 1
    rate = None
    starts = [t.datetime_start for t in complete if t.datetime_start]
    ends = [t.datetime_complete for t in complete if t.datetime_complete]
    if starts and ends and len(complete) > 1:
        hours = (max(ends) - min(starts)) / dt.timedelta(hours=1)
        rate = len(complete) / hours if hours > 0 else None
    attrs = study.user_attrs
    cfg = attrs.get("config", {})
    return StudySnapshot(
        name=study.study_name, storage=storage, n_bits=int(attrs.get("n_bits", 0)),
        method=cfg.get("peft", {}).get("method", ""), space=cfg.get("peft", {}).get("space", ""),
        block_names=list(attrs.get("block_names", [])), rows=rows, counts=counts, picked=picked,
        hypervolume=_hypervolume(study, complete), trials_per_hour=rate, config=cfg,
    )
