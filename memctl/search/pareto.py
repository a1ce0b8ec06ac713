"""The Pareto front of a finished search and the one mask retrained from it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """Non-dominated complete trials (Optuna's own computation)."""
    return sorted(study.best_trials, key=lambda t: t.number)


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


def pick(study: optuna.Study) -> FrozenTrial:
    """Front trial with the lowest mean normalised objective; ties go to the earlier trial."""
    front = pareto_front(study)
    if not front:
        raise ValueError(f"study {study.study_name!r} has no complete trials yet")
    scores = normalised_scores(front, complete_trials(study))
    return front[int(np.argmin(scores))]
