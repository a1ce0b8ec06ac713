"""The Pareto front of a finished search and the one mask retrained from it.

A global search (search.methods) runs one study per PEFT method; its front is the union of
theirs, so the functions here take any trials, of one study or of several.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def non_dominated(values: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows of an (n, 2) array (both minimised) no other row dominates;
    equal rows are all kept, as Optuna's best_trials keeps them. One sort and a sweep, so
    10,000 trials take milliseconds."""
    values = np.asarray(values, dtype=np.float64).reshape(-1, 2)
    keep = np.zeros(len(values), dtype=bool)
    best: tuple[float, float] | None = None
    for i in np.lexsort((values[:, 1], values[:, 0])):
        point = (values[i, 0], values[i, 1])
        if best is None or point[1] < best[1] or point == best:
            keep[i] = True
            best = point
    return keep


def front_of(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The non-dominated trials among complete `trials`, in the order given."""
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if not done:
        return []
    keep = non_dominated(np.array([t.values for t in done]))
    return [t for t, k in zip(done, keep, strict=True) if k]


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """Non-dominated complete trials of one study, by trial number."""
    return sorted(front_of(complete_trials(study)), key=lambda t: t.number)


def normalised_scores(
    candidates: Sequence[FrozenTrial], reference: Sequence[FrozenTrial]
) -> list[float]:
    """Mean of the objectives after min-max scaling over `reference`.

    Raw d_mem and FID live on different scales, so an unscaled mean would just pick the
    lowest FID. Scaling over all complete trials (not only the front) keeps the scale of
    the search's whole range.
    """
    ref = np.array([t.values for t in reference], dtype=np.float64)
    lo, hi = ref.min(axis=0), ref.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    vals = (np.array([t.values for t in candidates], dtype=np.float64) - lo) / span
    return vals.mean(axis=1).tolist()


def pick_index(trials: Sequence[FrozenTrial]) -> int:
    """Index in `trials` of the front trial with the lowest mean normalised objective
    (scaled over all complete ones); ties go to the earlier one. ValueError when none is
    complete."""
    done = [i for i, t in enumerate(trials) if t.state == TrialState.COMPLETE]
    if not done:
        raise ValueError("no complete trials yet")
    keep = non_dominated(np.array([trials[i].values for i in done]))
    front = [i for i, k in zip(done, keep, strict=True) if k]
    scores = normalised_scores([trials[i] for i in front], [trials[i] for i in done])
    return front[int(np.argmin(scores))]


def pick(study: optuna.Study) -> FrozenTrial:
    """Front trial with the lowest mean normalised objective; ties go to the earlier trial."""
    trials = complete_trials(study)
    if not trials:
        raise ValueError(f"study {study.study_name!r} has no complete trials yet")
    return trials[pick_index(trials)]


def hypervolume(values: np.ndarray, reference: Sequence[float]) -> float:
    """Area dominated by (n, 2) points (both minimised) and bounded by `reference`; points
    not better than the reference in both objectives add nothing. Exact, one sort."""
    values = np.asarray(values, dtype=np.float64).reshape(-1, 2)
    rx, ry = float(reference[0]), float(reference[1])
    inside = values[(values[:, 0] < rx) & (values[:, 1] < ry)]
    area, best_y = 0.0, ry
    for x, y in inside[np.lexsort((inside[:, 1], inside[:, 0]))]:
        if y < best_y:
            area += (rx - x) * (best_y - y)
            best_y = y
    return area


def hypervolume_history(values: np.ndarray, reference: Sequence[float]) -> list[float]:
    """Hypervolume after each of the (n, 2) points in turn (the order trials completed).
    Keeps only the running front, so 10,000 trials cost 10,000 small fronts, not sorts of
    everything."""
    front = np.empty((0, 2))
    out, current = [], 0.0
    for point in np.asarray(values, dtype=np.float64).reshape(-1, 2):
        if not np.any((front[:, 0] <= point[0]) & (front[:, 1] <= point[1])):
            keep = ~((point[0] <= front[:, 0]) & (point[1] <= front[:, 1]))
            front = np.vstack([front[keep], point])
            current = hypervolume(front, reference)
        out.append(current)
    return out
