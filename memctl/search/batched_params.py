"""An RDBStorage that writes a trial's parameters in one transaction instead of one each.

Optuna writes every `trial.suggest_*` as its own transaction: look the trial up, check it is
still running, insert, commit. A 16-bit mask is 16 of those per ask, most of an uncontended
ask on PostgreSQL. Here parameter writes are held in memory and written together, in one
transaction with one trial lookup and one insert, just before the next storage call of this
process (whatever it is: reading a trial, setting an attribute, telling a result), so nothing
anyone reads through this storage is ever missing a parameter.

Heartbeats do not flush: they run on Optuna's heartbeat thread, which must not raise on behalf
of the trial's own thread. The cost: a process killed between its suggestions and its next
storage call loses those parameters, and its trial is retried with freshly sampled ones.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

from optuna import distributions
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session

# Calls that must not flush: the heartbeat thread's, and the parameter write itself.
_NO_FLUSH = {"record_heartbeat", "set_trial_param"}

# Private methods that Optuna's cached-storage wrapper and heartbeat code call directly.
_PRIVATE_CALLS = {"_create_new_trial", "_get_trials", "_get_best_trial_id",
                  "_get_stale_trial_ids"}

_Pending = tuple[str, float, distributions.BaseDistribution,
                 distributions.BaseDistribution | None]


def _flushing_first(method: Callable) -> Callable:
    @functools.wraps(method)
    def wrapper(self: BatchedParamsRDBStorage, *args: Any, **kwargs: Any) -> Any:
        self.flush_params()
        return method(self, *args, **kwargs)

    return wrapper


class BatchedParamsRDBStorage(RDBStorage):
    """RDBStorage whose parameter writes are batched per trial (see the module docstring)."""

    def __init__(self, *args: Any, batch_params: bool = True, **kwargs: Any) -> None:
        self._batch_params = batch_params  # False: Optuna's own one-transaction-per-parameter
        self._pending: dict[int, list[_Pending]] = {}
        self._pending_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def __getstate__(self) -> dict[Any, Any]:
        self.flush_params()  # a pickled copy must not carry another process's pending writes
        state = super().__getstate__()
        del state["_pending_lock"]
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._pending_lock = threading.Lock()

    def _set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                         distribution: distributions.BaseDistribution,
                         previous_distribution: distributions.BaseDistribution | None) -> None:
        if not self._batch_params:
            super()._set_trial_param(trial_id, param_name, param_value_internal, distribution,
                                     previous_distribution)
            return
        with self._pending_lock:
            self._pending.setdefault(trial_id, []).append(
                (param_name, param_value_internal, distribution, previous_distribution))

    def flush_params(self) -> None:
        """Write every held parameter in one transaction.

        If the database fails, everything stays held for the caller's retry. If it refuses a
        trial's parameters (the trial finished elsewhere, a clashing distribution), that
        trial's are dropped and the refusal raised, as Optuna would at the suggest itself.
        """
        with self._pending_lock:
            if not self._pending:
                return
            trial_id = None
            try:
                with _create_scoped_session(self.scoped_session, True) as session:
                    for trial_id, params in self._pending.items():
                        self._write_params(session, trial_id, params)
            except (UpdateFinishedTrialError, ValueError):
                self._pending.pop(trial_id, None)  # the refused trial's
                raise
            self._pending.clear()

    def _write_params(self, session: Any, trial_id: int, params: list[_Pending]) -> None:
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
        # Optuna's check_trial_is_updatable reads the trial through this storage: that would
        # flush again, under the lock.
        if trial.state.is_finished():
            raise UpdateFinishedTrialError(
                f"Trial#{trial.number} has already finished and can not be updated.")
        for name, _, distribution, previous in params:
            if previous is None:  # first time this process sees the name: ask the study
                record = (
                    session.query(models.TrialParamModel)
                    .join(models.TrialModel)
                    .filter(models.TrialModel.study_id == trial.study_id)
                    .filter(models.TrialParamModel.param_name == name)
                    .first()
                )
                if record is not None:
                    previous = distributions.json_to_distribution(record.distribution_json)
            if previous is not None:
                distributions.check_distribution_compatibility(previous, distribution)
        session.add_all(
            models.TrialParamModel(
                trial_id=trial_id, param_name=name, param_value=value,
                distribution_json=distributions.distribution_to_json(distribution))
            for name, value, distribution, _ in params
        )


# Every public call flushes first, and so do the private ones above; set_trial_param only
# queues (it calls _set_trial_param, defined above, which is left as it is).
for _name, _method in vars(RDBStorage).items():
    if inspect.isfunction(_method) and _name not in _NO_FLUSH and _name not in vars(
            BatchedParamsRDBStorage) and (not _name.startswith("_") or _name in _PRIVATE_CALLS):
        setattr(BatchedParamsRDBStorage, _name, _flushing_first(_method))
