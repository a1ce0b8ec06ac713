"""The worker's trial loop when another process fails its running trial as stale."""

from __future__ import annotations

import optuna
import pytest
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from memctl.config import load_config
from memctl.search.study import create_study, load_study
from memctl.search.worker import _enough, run_one_trial, stop_if_taken


@pytest.fixture
def studies(tmp_path):
    """This worker's view of a heartbeat-enabled study, and another process's view of it."""
    cfg = load_config(None, [f"run_dir={tmp_path}", "search.study=w", "search.heartbeat_s=60"])
    url = f"sqlite:///{tmp_path}/study.db"
    create_study(cfg, url)
    return load_study(cfg, url, worker_index=0), load_study(cfg, url, worker_index=1)


def _fail_elsewhere(other: optuna.Study, trial: optuna.Trial) -> None:
    # What another worker's fail_stale_trials does to a trial whose heartbeat lapsed.
    other._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


@pytest.mark.parametrize("then", ["return", "write"])
def test_a_trial_failed_as_stale_elsewhere_does_not_stop_the_worker(studies, then):
    mine, other = studies

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        trial.suggest_categorical("b00", [0, 1])
        _fail_elsewhere(other, trial)
        if then == "write":  # the objective's next storage write meets the finished trial
            trial.set_user_attr("mask", "0")
        return 1.0, 2.0

    assert run_one_trial(mine, objective, gc_after_trial=False) == 0
    assert [t.state for t in mine.get_trials()] == [TrialState.FAIL]
    # The worker goes on with the next trial.
    assert run_one_trial(mine, lambda t: (t.suggest_categorical("b00", [0, 1]) + 0.5, 1.0),
                         gc_after_trial=False) is None
    assert [t.state for t in mine.get_trials()] == [TrialState.FAIL, TrialState.COMPLETE]
    assert not _enough(mine, 2) and _enough(mine, 1)


def test_an_objective_that_raises_is_recorded_fail_not_lost(studies):
    mine, _ = studies

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        raise FloatingPointError("loss is NaN")

    assert run_one_trial(mine, objective, gc_after_trial=False) is None
    assert [t.state for t in mine.get_trials()] == [TrialState.FAIL]


def test_training_stops_once_the_trial_was_failed_elsewhere(studies):
    mine, other = studies
    trial = mine.ask()
    check, throttled = stop_if_taken(trial, every_s=0), stop_if_taken(trial, every_s=3600)
    check(1, 10, 0.5)  # still ours: training goes on
    _fail_elsewhere(other, trial)
    throttled(2, 10, 0.5)  # reads the storage at most every `every_s` seconds
    with pytest.raises(UpdateFinishedTrialError, match="at step 2"):
        check(2, 10, 0.5)
