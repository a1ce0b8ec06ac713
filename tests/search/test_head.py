import dataclasses

import pytest

from memctl.errors import UserError
from memctl.search.head import run_search
from tests.conftest import small_config


def test_unreachable_storage_fails_before_anything_is_built(tmp_path):
    cfg = small_config(tmp_path / "runs",
                       search={"storage": "postgresql+psycopg2://u:hunter2@127.0.0.1:1/x"})
    with pytest.raises(UserError, match=r"u:\*\*\*@127.0.0.1:1/x: cannot open"):
        run_search(cfg)
    assert not (tmp_path / "runs").exists()


def test_search_reports_the_study_as_stored_at_exit(prepared, tmp_path):
    """Another search shares the study and still runs a trial when this search's own worker
    stops (the study would be full): the count returned is the study's once it finishes."""
    import threading
    import time

    import optuna

    from memctl.search.study import create_study, make_storage

    cfg, _ = prepared
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    cfg = dataclasses.replace(cfg, search=dataclasses.replace(
        cfg.search, storage=url, trials=3, workers=1, executor="debug",
        enqueue_baseline=False))
    other = create_study(cfg, url)  # the other search's head and worker
    for _ in range(2):
        other.tell(other.ask(), [1.0, 2.0])
    theirs = other.ask()

    def finish_theirs() -> None:
        time.sleep(3)
        study = optuna.load_study(study_name=cfg.search.study, storage=make_storage(url, cfg))
        study.tell(theirs.number, [1.5, 1.5])

    finisher = threading.Thread(target=finish_theirs)
    finisher.start()
    result = run_search(cfg, poll_s=0.2)
    finisher.join()
    assert (result.counts.complete, result.counts.running) == (3, 0)


def test_a_study_keeps_the_d_mem_it_was_created_with(tmp_path):
    from memctl.search.head import setup_study
    from memctl.search.objective import TrialContext

    cfg = small_config(tmp_path / "runs", search={"dmem": "trajectory"})
    url = f"sqlite:///{tmp_path / 'study.db'}"
    ctx = TrialContext("model", "cache.h5", [0], [0], n_bits=4)
    setup_study(cfg, ctx, url)
    setup_study(cfg, ctx, url)  # the same objective: the search goes on
    noised = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, dmem="noised"))
    with pytest.raises(UserError, match="scores trajectory d_mem .search.dmem., not noised"):
        setup_study(noised, ctx, url)
