"""One read of a study (or of a global search's studies) into plain rows that status,
figures and tables share."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import optuna
from optuna.trial import TrialState

from memctl.search.pareto import (
    hypervolume_history,
    non_dominated,
    normalised_scores,
    pick_index,
)
from memctl.search.study import mask_url


@dataclass
class TrialRow:
    number: int
    state: str
    study: str
    method: str
    mask: str
    d_mem: float | None
    fid: float | None
    trainable: int | None
    total: int | None = None
    """U-Net parameters (trainable / total is the trained fraction)."""
    pareto: bool = False
    picked: bool = False
    score: float | None = None
    """Mean of min-max normalised objectives (the pick criterion); front trials only."""
    seconds: float | None = None
    started: str = ""
    completed: str = ""
    """ISO times the trial started and finished (empty while not)."""
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
    """Trial number of the pick (in picked_study)."""
    hypervolume: float | None
    """Of the front so far, against hv_reference (raw d_mem and FID)."""
    trials_per_hour: float | None
    config: dict = field(default_factory=dict)
    picked_study: str = ""
    studies: list[str] = field(default_factory=list)
    """The studies read: one, or a global search's one per method."""
    hv_reference: list[float] = field(default_factory=list)
    hv_reference_recorded: bool = True
    """False for a study created without a reference: derived from today's trials, so its
    values do not compare with another report's."""
    hv_history: list[float] = field(default_factory=list)
    """Hypervolume after each complete trial, in the order they completed."""
    memctl_version: str = ""
    """memctl that created the study."""

    @property
    def front(self) -> list[TrialRow]:
        return [r for r in self.rows if r.pareto]

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(r.method for r in self.rows))


def _reference(attrs: dict, complete: list) -> tuple[list[float], bool]:
    """The study's recorded reference point, or 1.1x the worst complete values."""
    if attrs.get("hv_reference"):
        return [float(v) for v in attrs["hv_reference"]], True
    if not complete:
        return [], False
    worst = np.array([t.values for t in complete], dtype=float).max(0)
    return [float(v) for v in np.where(worst > 0, worst * 1.1, 1.0)], False


def _method(study: optuna.Study) -> str:
    return str(study.user_attrs.get("config", {}).get("peft", {}).get("method", ""))


def collect(studies: optuna.Study | Sequence[optuna.Study], storage: str,
            name: str | None = None) -> StudySnapshot:
    """One read of each study into rows; several studies (a global search) share one front,
    one pick and one normalisation, as `memctl retrain --best` does."""
    studies = [studies] if isinstance(studies, optuna.Study) else list(studies)
    pairs = [(s, t) for s in studies for t in s.get_trials(deepcopy=False)]
    trials = [t for _, t in pairs]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    keys = [(s.study_name, t.number) for s, t in pairs]
    front_ids, scores, picked = set(), {}, None
    if complete:
        done = [k for k, t in zip(keys, trials, strict=True) if t.state == TrialState.COMPLETE]
        keep = non_dominated(np.array([t.values for t in complete]))
        front = [(k, t) for k, t, on in zip(done, complete, keep, strict=True) if on]
        front_ids = {k for k, _ in front}
        scores = dict(zip([k for k, _ in front],
                          normalised_scores([t for _, t in front], complete), strict=True))
        picked = done[pick_index(complete)]
    methods = {s.study_name: _method(s) for s in studies}
    rows = []
    for (study_name, _), t in zip(keys, trials, strict=True):
        key = (study_name, t.number)
        values = t.values if t.state == TrialState.COMPLETE else None
        secs = ((t.datetime_complete - t.datetime_start).total_seconds()
                if t.datetime_complete and t.datetime_start else None)
        rows.append(TrialRow(
            number=t.number, state=t.state.name, study=study_name, method=methods[study_name],
            mask=str(t.user_attrs.get("mask", "")),
            d_mem=values[0] if values else None, fid=values[1] if values else None,
            trainable=t.user_attrs.get("trainable"), total=t.user_attrs.get("total"),
            pareto=key in front_ids, picked=key == picked, score=scores.get(key), seconds=secs,
            started=t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else "",
            completed=(t.datetime_complete.isoformat(timespec="seconds")
                       if t.datetime_complete else ""),
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
    attrs = studies[0].user_attrs
    cfg = attrs.get("config", {})
    reference, recorded = _reference(attrs, complete)
    in_order = sorted(complete, key=lambda t: (t.datetime_complete or dt.datetime.max, t.number))
    history = (hypervolume_history(np.array([t.values for t in in_order]), reference)
               if complete else [])
    return StudySnapshot(
        name=name or studies[0].study_name, storage=mask_url(storage),
        n_bits=int(attrs.get("n_bits", 0)),
        method="+".join(dict.fromkeys(methods.values())),
        space=cfg.get("peft", {}).get("space", ""),
        block_names=list(attrs.get("block_names", [])), rows=rows, counts=counts,
        picked=picked[1] if picked else None, hypervolume=history[-1] if history else None,
        trials_per_hour=rate, config=cfg, picked_study=picked[0] if picked else "",
        studies=[s.study_name for s in studies], hv_reference=reference,
        hv_reference_recorded=recorded, hv_history=history,
        memctl_version=str(attrs.get("memctl_version", "")),
    )
