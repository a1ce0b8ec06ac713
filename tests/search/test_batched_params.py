import pickle

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from sqlalchemy import event

from memctl.search.batched_params import BatchedParamsRDBStorage
from memctl.search.space import mask_from_params, suggest_mask


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path}/study.db"


def _param_transactions(storage) -> list[int]:
    """Grows by one for every committed transaction that inserted trial parameters."""
    inserts, committed = [0], []

    def on_execute(conn, cursor, statement, *args):
        inserts[0] += statement.lstrip().upper().startswith("INSERT INTO TRIAL_PARAMS")

    def on_commit(conn):
        if inserts[0]:
            committed.append(inserts[0])
        inserts[0] = 0

    event.listen(storage.engine, "before_cursor_execute", on_execute)
    event.listen(storage.engine, "commit", on_commit)
    return committed


@pytest.mark.parametrize(("storage_class", "transactions"),
                         [(optuna.storages.RDBStorage, 16), (BatchedParamsRDBStorage, 1)])
def test_a_masks_parameters_are_written_in_one_transaction_at_the_next_call(
        url, storage_class, transactions):
    storage = storage_class(url)
    study = optuna.create_study(storage=storage, study_name="s", directions=["minimize"] * 2)
    reader = optuna.storages.RDBStorage(url)
    trial = study.ask()
    written = _param_transactions(storage)
    bits = suggest_mask(trial, 16)
    if storage_class is BatchedParamsRDBStorage:  # held until the next call
        assert written == [] and reader.get_trial(trial._trial_id).params == {}
    trial.set_user_attr("started", True)
    assert len(written) == transactions
    assert mask_from_params(reader.get_trial(trial._trial_id).params, 16) == bits


def test_an_optimize_loop_stores_exactly_what_was_suggested(url):
    storage = BatchedParamsRDBStorage(url)
    study = optuna.create_study(storage=storage, study_name="s", directions=["minimize"] * 2)
    suggested = {}

    def objective(trial):
        bits = suggest_mask(trial, 16)
        suggested[trial.number] = bits
        return float(sum(bits)), float(16 - sum(bits))

    study.optimize(objective, n_trials=12)
    stored = optuna.load_study(study_name="s", storage=optuna.storages.RDBStorage(url)).trials
    assert {t.number: mask_from_params(t.params, 16) for t in stored} == suggested
    assert all(t.state == TrialState.COMPLETE for t in stored)


def test_parameters_of_a_trial_finished_elsewhere_are_refused_at_the_next_call(url):
    storage = BatchedParamsRDBStorage(url)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    optuna.storages.RDBStorage(url).set_trial_state_values(trial._trial_id, TrialState.FAIL)
    with pytest.raises(UpdateFinishedTrialError):
        storage.get_trial(trial._trial_id)
    assert storage.get_trial(trial._trial_id).params == {}  # the write was rolled back


def test_a_distribution_clashing_with_the_study_is_refused(url):
    storage = BatchedParamsRDBStorage(url)
    study_id = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "s")
    first = storage.create_new_trial(study_id)
    storage.set_trial_param(first, "x", 0.5, FloatDistribution(0, 1))
    storage.flush_params()
    second = storage.create_new_trial(study_id)
    storage.set_trial_param(second, "x", 0, CategoricalDistribution([0, 1]))
    with pytest.raises(ValueError, match="Cannot set different distribution"):
        storage.flush_params()


def test_a_pickled_storage_writes_its_held_parameters_first(url):
    storage = BatchedParamsRDBStorage(url)
    study_id = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "s")
    trial_id = storage.create_new_trial(study_id)
    storage.set_trial_param(trial_id, "x", 0.25, FloatDistribution(0, 1))
    copy = pickle.loads(pickle.dumps(storage))
    assert copy.get_trial(trial_id).params == {"x": 0.25}
