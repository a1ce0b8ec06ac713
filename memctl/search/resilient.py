"""An RDBStorage that rides out database restarts.

Workers run for days; a PostgreSQL restart or fail-over must not kill them. Every storage
call that fails with a connection-level OperationalError is retried with exponential
backoff (capped) until `max_wait_s` has passed; the connection pool's pre-ping then swaps the
dead connections for new ones.

An outage longer than the heartbeat grace period must not fail live trials either: while the
server is down no worker can beat, so when it comes back every running trial looks stale. A
process that has just seen the storage recover therefore skips stale-trial checks until every
live heartbeat thread has had time to write again (its retry back-off plus the grace period).
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from optuna.storages import RDBStorage
from sqlalchemy.exc import DBAPIError, OperationalError

from memctl.search.batched_params import BatchedParamsRDBStorage

log = logging.getLogger(__name__)

# Storage calls worth retrying: all reads and writes of studies, trials and heartbeats.
# (Writes are single transactions: a commit lost with the connection was rolled back.)
_RETRIED = (
    "check_trial_is_updatable create_new_study create_new_trial delete_study get_all_studies "
    "get_all_trials get_best_trial get_n_trials get_study_directions get_study_id_from_name "
    "get_study_name_from_id get_study_system_attrs get_study_user_attrs get_trial "
    "get_trial_id_from_study_id_trial_number get_trial_number_from_id get_trial_param "
    "get_trial_params get_trial_system_attrs get_trial_user_attrs record_heartbeat "
    "set_study_system_attr set_study_user_attr set_trial_intermediate_value set_trial_param "
    "set_trial_state_values set_trial_system_attr set_trial_user_attr _get_stale_trial_ids "
    "fail_stale_trials "
    # private methods Optuna's own cached-storage wrapper calls directly
    "_create_new_trial _set_trial_param _get_best_trial_id _get_trials"
).split()


def _transient(err: BaseException | None) -> bool:
    """A lost or refused connection, possibly wrapped (Optuna re-raises commit errors as
    StorageInternalError from the SQLAlchemy error)."""
    while err is not None:
        if isinstance(err, OperationalError):
            return True
        # psycopg2 reports a dropped server connection as InterfaceError/DatabaseError too.
        if isinstance(err, DBAPIError) and getattr(err, "connection_invalidated", False):
            return True
        err = err.__cause__ or err.__context__
    return False


def _retrying(method: Callable, max_wait_s: float) -> Callable:
    @functools.wraps(method)
    def wrapper(self: RDBStorage, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + getattr(self, "_max_wait_s", max_wait_s)
        max_delay = getattr(self, "_max_delay_s", 30.0)
        delay, failed = 0.5, False
        while True:
            try:
                result = method(self, *args, **kwargs)
            except Exception as err:
                if not _transient(err) or time.monotonic() + delay > deadline:
                    raise
                failed = True
                log.warning("storage unavailable (%s); retrying in %.1f s",
                            type(err.__cause__ or err).__name__, delay)
                self.engine.dispose()  # drop every pooled connection to the old server
                time.sleep(delay * (1 + 0.25 * random.random()))
                delay = min(delay * 2, max_delay)
            else:
                if failed:
                    self._recovered_at = time.monotonic()
                return result

    return wrapper


class ResilientRDBStorage(BatchedParamsRDBStorage):
    """RDBStorage whose calls survive a database restart of up to `max_wait_s` seconds
    (and whose parameter writes are batched per trial: memctl.search.batched_params).

    `max_delay_s` caps the back-off between retries, and so bounds how long after a recovery
    another process's heartbeat thread may still be asleep before it beats again.
    """

    def __init__(self, url: str, *args: Any, max_wait_s: float = 600.0,
                 max_delay_s: float = 30.0, **kwargs: Any) -> None:
        self._max_wait_s = max_wait_s
        self._max_delay_s = max_delay_s
        self._recovered_at: float | None = None
        super().__init__(url, *args, **kwargs)

    def stale_check_deferred_s(self) -> float:
        """Seconds for which stale-trial checks are still skipped after a recovery (0: none)."""
        if self._recovered_at is None or self.heartbeat_interval is None:
            return 0.0
        grace = self.grace_period or 2 * self.heartbeat_interval
        window = grace + self._max_delay_s
        return max(0.0, window - (time.monotonic() - self._recovered_at))

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        left = self.stale_check_deferred_s()
        if left > 0:
            log.info("storage recovered recently: stale-trial check skipped for %.0f s more", left)
            return []
        return super()._get_stale_trial_ids(study_id)


for _name in _RETRIED:
    if hasattr(RDBStorage, _name):  # wraps the override above where there is one
        setattr(ResilientRDBStorage, _name, _retrying(getattr(ResilientRDBStorage, _name), 600.0))
