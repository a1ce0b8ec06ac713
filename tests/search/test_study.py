import importlib.util
import subprocess
import threading
import time

import pytest

from memctl.config import load_config
from memctl.errors import UserError
from memctl.search.study import (
    check_reachable,
    create_study,
    driver_url,
    load_study,
    make_storage,
    mask_url,
)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql+psycopg2://memctl:s3cret@db:5432/x", "postgresql+psycopg2://memctl:***@db:5432/x"),
        ("postgresql://u@db/x", "postgresql://u@db/x"),
        ("sqlite:////tmp/a.db", "sqlite:////tmp/a.db"),
        ("runs/study.journal", "runs/study.journal"),
    ],
)
def test_mask_url_hides_passwords(url, masked):
    assert mask_url(url) == masked


def test_unreachable_database_error_is_one_line_without_password():
    cfg = load_config(None, ["search.heartbeat_s=60"])
    url = "postgresql+psycopg2://memctl:hunter2@127.0.0.1:1/none"
    with pytest.raises(UserError) as err:
        make_storage(url, cfg)
    message = str(err.value)
    assert "hunter2" not in message and "memctl:***@" in message and "\n" not in message


def test_bad_storage_strings_are_user_errors():
    cfg = load_config()
    with pytest.raises(UserError, match="neither an SQLAlchemy URL"):
        make_storage("not a url", cfg)
    with pytest.raises(UserError, match="grpc://HOST:PORT"):
        make_storage("grpc://nohostport", cfg)


def test_journal_storage_holds_one_study_for_head_and_workers(tmp_path):
    cfg = load_config(None, [f"run_dir={tmp_path}", "search.study=j"])
    url = str(tmp_path / "study.journal")
    head = create_study(cfg, url)
    worker = load_study(cfg, url, worker_index=3)
    assert worker.sampler._rng.rng.randint(1 << 30) != head.sampler._rng.rng.randint(1 << 30)
    worker.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=2)
    assert len(load_study(cfg, url).trials) == 2
    assert head.metric_names == ["d_mem", "fid"]


def test_workers_get_distinct_sampler_seeds(tmp_path):
    cfg = load_config(None, [f"run_dir={tmp_path}"])
    url = f"sqlite:///{tmp_path}/s.db"
    create_study(cfg, url)
    seeds = {load_study(cfg, url, i).sampler._rng.rng.randint(1 << 30) for i in range(4)}
    assert len(seeds) == 4


@pytest.mark.postgres
def test_storage_calls_survive_a_postgres_restart(dev_cluster):
    url = dev_cluster["MEMCTL_TEST_PG_URL"]
    cfg = load_config(None, [f"search.study=restart-{time.time_ns()}"])
    study = create_study(cfg, url)
    restart = threading.Thread(target=subprocess.run, args=(
        [dev_cluster["MEMCTL_TEST_PG_RESTART"], "3"],), kwargs={"check": True})
    restart.start()
    time.sleep(1.0)  # the server is now down for ~3 s
    trial = study.ask()  # retried until the server is back
    study.tell(trial, [1.0, 2.0])
    restart.join()
    assert [t.state.name for t in load_study(cfg, url).trials] == ["COMPLETE"]


@pytest.mark.postgres
def test_an_outage_longer_than_the_grace_period_fails_no_live_trial(dev_cluster):
    """While the server is down nobody can beat, so every running trial looks stale when it
    returns; a process that saw the outage waits for heartbeats to resume before judging."""
    import optuna
    from optuna.storages import RDBStorage, fail_stale_trials
    from optuna.trial import TrialState

    url = dev_cluster["MEMCTL_TEST_PG_URL"]
    cfg = load_config(None, [f"search.study=outage-{time.time_ns()}", "search.heartbeat_s=1"])
    create_study(cfg, url)
    storage = make_storage(url, cfg)  # grace period 2 s
    storage._max_delay_s = 1.0  # retry back-off cap, so the deferral window is 2 + 1 s
    study = optuna.load_study(study_name=cfg.search.study, storage=storage)
    trial = study.ask()
    storage.record_heartbeat(trial._trial_id)  # then its worker stops beating
    restart = threading.Thread(target=subprocess.run, args=(
        [dev_cluster["MEMCTL_TEST_PG_RESTART"], "4"],), kwargs={"check": True})
    restart.start()
    time.sleep(1.0)  # the server is now down for ~4 s, longer than the grace period
    storage.get_all_trials(study._study_id)  # retried until the server is back
    restart.join()
    assert trial._trial_id in RDBStorage._get_stale_trial_ids(storage, study._study_id)
    assert storage.stale_check_deferred_s() > 0
    fail_stale_trials(study)
    assert storage.get_trial(trial._trial_id).state == TrialState.RUNNING
    # A worker that really died is still failed once the window has passed.
    time.sleep(storage.stale_check_deferred_s() + 0.2)
    fail_stale_trials(study)
    assert storage.get_trial(trial._trial_id).state == TrialState.FAIL


@pytest.mark.parametrize("name", ["studies.db", "study.journal"])
def test_loading_a_missing_study_creates_no_store(tmp_path, name):
    cfg = load_config(None, [f"run_dir={tmp_path}", "search.study=absent"])
    path = tmp_path / name
    url = f"sqlite:///{path}" if name.endswith(".db") else str(path)
    with pytest.raises(UserError) as err:
        load_study(cfg, url)
    assert str(err.value) == f"no study 'absent' in {url}; run memctl search first"
    assert not path.exists()


def test_loading_a_study_missing_from_an_existing_store(tmp_path):
    cfg = load_config(None, [f"run_dir={tmp_path}", "search.study=there"])
    url = f"sqlite:///{tmp_path}/s.db"
    create_study(cfg, url)
    other = load_config(None, [f"run_dir={tmp_path}", "search.study=other"])
    with pytest.raises(UserError, match="no study 'other' in .*; run memctl search first"):
        load_study(other, url)


def test_plain_postgresql_url_opens_with_psycopg2():
    pytest.importorskip("psycopg2")
    if importlib.util.find_spec("psycopg") is not None:
        pytest.skip("psycopg 3 installed: SQLAlchemy's own default applies")
    url = "postgresql://memctl:hunter2@127.0.0.1:1/none"
    assert driver_url(url) == "postgresql+psycopg2://memctl:hunter2@127.0.0.1:1/none"
    assert driver_url("postgresql+psycopg2://u@h/x") == "postgresql+psycopg2://u@h/x"
    with pytest.raises(UserError) as err:
        make_storage(url, load_config())
    message = str(err.value)
    assert "driver missing" not in message and "cannot open" in message
    assert "hunter2" not in message and "memctl:***@" in message


def test_unreachable_server_fails_the_reachability_check():
    with pytest.raises(UserError) as err:
        check_reachable("postgresql+psycopg2://memctl:hunter2@127.0.0.1:1/none")
    message = str(err.value)
    assert "cannot open" in message and "hunter2" not in message and "\n" not in message
