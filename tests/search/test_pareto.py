import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import create_trial

from memctl.search.pareto import normalised_scores, pareto_front, pick


def _study(values: list[tuple[float, float]]) -> optuna.Study:
    study = optuna.create_study(directions=["minimize", "minimize"])
    for k, v in enumerate(values):
        study.add_trial(create_trial(values=list(v), params={"b00": k % 2},
                                     distributions={"b00": CategoricalDistribution([0, 1])}))
    return study


def test_front_excludes_dominated_trials():
    study = _study([(1.0, 100.0), (2.0, 50.0), (3.0, 60.0), (4.0, 10.0)])
    assert [t.number for t in pareto_front(study)] == [0, 1, 3]


def test_pick_normalises_before_averaging():
    # Raw mean would pick trial 2 (FID dominates the sum); normalised, trial 1 balances both.
    study = _study([(0.0, 100.0), (0.4, 40.0), (1.0, 0.0)])
    assert pick(study).number == 1


def test_normalised_scores_match_hand_computation():
    study = _study([(0.0, 100.0), (0.5, 40.0), (1.0, 0.0)])
    trials = study.trials
    assert normalised_scores(trials, trials) == pytest.approx([0.5, 0.45, 0.5])


def test_pick_tie_goes_to_earlier_trial():
    study = _study([(0.0, 1.0), (1.0, 0.0)])
    assert pick(study).number == 0


def test_pick_on_empty_study_raises():
    with pytest.raises(ValueError, match="no complete trials"):
        pick(optuna.create_study(directions=["minimize", "minimize"]))


def test_front_keeps_equal_points_and_matches_optuna_on_random_studies():
    import numpy as np

    from memctl.search.pareto import non_dominated

    assert non_dominated(np.array([[1, 1], [1, 1], [1, 2], [2, 1], [0, 3]])).tolist() == [
        True, True, False, False, True]
    rng = np.random.default_rng(0)
    for n in (1, 5, 40, 200):
        # Coarse values: many ties in one objective or both.
        study = _study([tuple(v) for v in rng.integers(0, 8, size=(n, 2)).astype(float)])
        assert [t.number for t in pareto_front(study)] == sorted(
            t.number for t in study.best_trials)


def test_pick_over_the_union_of_several_studies():
    from memctl.search.pareto import pick_index

    a = _study([(0.0, 100.0), (1.0, 0.0)])
    b = _study([(0.4, 40.0), (0.5, 60.0)])
    union = a.trials + b.trials
    # Normalised over all four: b's trial 0 balances both objectives best.
    assert pick_index(union) == 2
    assert pick(a).number == 0  # alone, a's tie goes to its earlier trial
