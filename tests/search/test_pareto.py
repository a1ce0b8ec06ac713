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
