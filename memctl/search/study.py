"""Study storage and sampler.

The head process creates storage tables and the study exactly once (concurrent creation on
an empty database races: duplicate CREATE TYPE / table exists); workers only load it.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import warnings
from pathlib import Path

import optuna
from optuna.samplers import NSGAIISampler
from optuna.storages import RetryHeartbeatStaleTrialCallback
from sqlalchemy.engine import make_url

from memctl.config import Config
from memctl.errors import UserError
from memctl.search.resilient import ResilientRDBStorage

log = logging.getLogger(__name__)
# Heartbeats and metric names are marked experimental; they are what we rely on, knowingly.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)

OBJECTIVES = ("d_mem", "fid")
DIRECTIONS = ("minimize", "minimize")
GLOBAL_ATTR = "global_study"
"""User attribute naming the global search a per-method study belongs to."""


def method_configs(cfg: Config) -> list[Config]:
    """The config of each study a search runs: cfg itself, or for a global search
    (search.methods) one per method, its study named STUDY-METHOD."""
    if not cfg.search.methods:
        return [cfg]
    return [dataclasses.replace(
        cfg, peft=dataclasses.replace(cfg.peft, method=method),
        search=dataclasses.replace(cfg.search, study=f"{cfg.search.study}-{method}",
                                   methods=[]))
        for method in cfg.search.methods]


def default_storage_url(cfg: Config) -> str:
    return f"sqlite:///{(cfg.run_path / 'studies.db').resolve()}"


def storage_url(cfg: Config) -> str:
    return cfg.search.storage or default_storage_url(cfg)


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, for printing and logs."""
    if "://" not in url:
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL: mask anything between ':' and '@'
        scheme, rest = url.split("://", 1)
        if "@" in rest and ":" in rest.split("@", 1)[0]:
            user = rest.split("@", 1)[0].split(":", 1)[0]
            return f"{scheme}://{user}:***@{rest.split('@', 1)[1]}"
        return url


def _grpc(url: str) -> optuna.storages.BaseStorage:
    """grpc://host:port: Optuna's storage proxy, for fan-outs a database cannot serve."""
    try:
        from optuna.storages import GrpcStorageProxy
    except ImportError as err:
        raise UserError(f"search.storage {url}: gRPC storage needs grpcio ({err})") from None
    host, _, port = url.removeprefix("grpc://").rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"search.storage: {url!r}: expected grpc://HOST:PORT")
    return GrpcStorageProxy(host=host, port=int(port))


def _is_journal(url: str) -> bool:
    return url.startswith("journal:") or url.endswith(".journal") or url.endswith(".log")


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def driver_url(url: str) -> str:
    """The URL SQLAlchemy should open. SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3;
    where only psycopg2 is installed (memctl's own dependency), name it explicitly."""
    bare = "postgresql://"
    if url.startswith(bare) and not _importable("psycopg") and _importable("psycopg2"):
        return "postgresql+psycopg2://" + url.removeprefix(bare)
    return url


def _storage_error(url: str, err: Exception) -> UserError:
    """One line for a storage that cannot be opened; SQLAlchemy errors carry the URL, so
    the password is masked in the message too."""
    if isinstance(err, ImportError):
        return UserError(f"search.storage {mask_url(url)}: driver missing ({err})")
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    for shown in {url, driver_url(url)}:
        msg = msg.replace(shown, mask_url(shown))
    return UserError(f"search.storage {mask_url(url)}: cannot open ({msg})")


def _is_server(url: str) -> bool:
    """A database server URL (PostgreSQL, MySQL...), as opposed to a file or a gRPC proxy."""
    return ("://" in url and not url.startswith(("grpc://", "sqlite")) and not _is_journal(url))


def _probe(url: str) -> bool:
    """Connects once, without retries: whether memctl's tables exist on the server. Raises
    UserError when it cannot be reached (bad host, refused, wrong password, no driver)."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.pool import NullPool

    try:
        engine_url = make_url(driver_url(url))
        timeout = {"connect_timeout": 10} if engine_url.get_backend_name() == "postgresql" else {}
        engine = create_engine(engine_url, poolclass=NullPool, connect_args=timeout)
        try:
            with engine.connect() as conn:
                return inspect(conn).has_table("studies")
        finally:
            engine.dispose()
    except Exception as err:
        raise _storage_error(url, err) from None


def check_reachable(url: str) -> None:
    """Fails fast when the search's database server cannot be reached, before anything slow
    runs. Study files (sqlite, journal) are created by the search itself."""
    if _is_server(url):
        _probe(url)


def _store_exists(url: str) -> bool:
    """Whether a study store exists at `url`, found without creating one (opening a missing
    sqlite file or an empty database would create the store and its tables)."""
    if _is_journal(url):
        return Path(url.removeprefix("journal:")).is_file()
    if url.startswith("sqlite"):
        try:
            database = make_url(url).database
        except Exception:  # not a URL make_storage can open: let it say why
            return True
        return bool(database) and database != ":memory:" and Path(database).is_file()
    return _probe(url) if _is_server(url) else True


def _no_study(cfg: Config, url: str) -> UserError:
    return UserError(f"no study {cfg.search.study!r} in {mask_url(url)}; "
                     f"run memctl search first")


def make_storage(url: str, cfg: Config, *, heartbeat: bool = True,
                 batch_params: bool = True) -> optuna.storages.BaseStorage:
    """Storage from a URL: SQLAlchemy URLs -> RDBStorage (heartbeats, retried on connection
    loss, a trial's parameters written in one transaction unless `batch_params` is False),
    `*.journal` -> journal file, `grpc://host:port` -> Optuna's gRPC storage proxy."""
    if url.startswith("grpc://"):
        return _grpc(url)
    if _is_journal(url):
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

        path = url.removeprefix("journal:")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    if "://" not in url:
        raise UserError(
            f"search.storage: {url!r} is neither an SQLAlchemy URL nor a *.journal file")
    if url.startswith("sqlite"):
        engine_kwargs: dict = {"connect_args": {"timeout": 120}}
    else:  # one process holds few connections; hundreds of workers share one server
        engine_kwargs = {"pool_size": 2, "max_overflow": 2, "pool_pre_ping": True,
                         "pool_recycle": 600}
    kwargs: dict = {}
    if heartbeat:
        kwargs = dict(
            heartbeat_interval=cfg.search.heartbeat_s,
            grace_period=cfg.search.heartbeat_s * 2,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                max_retry=cfg.search.max_retries),
        )
    try:
        return ResilientRDBStorage(driver_url(url), engine_kwargs=engine_kwargs,
                                   batch_params=batch_params, **kwargs)
    except Exception as err:
        raise _storage_error(url, err) from None


def make_sampler(cfg: Config, worker_index: int = 0) -> NSGAIISampler:
    """Each worker gets its own seed: the same seed in N workers proposes identical masks.

    Optuna's own NSGA-II: since 5.1 it keeps its generation bookkeeping between asks, so an
    ask no longer re-scans the whole study.
    """
    return NSGAIISampler(
        population_size=cfg.search.population_size,
        crossover_prob=cfg.search.crossover_prob,
        mutation_prob=cfg.search.mutation_prob or None,
        seed=cfg.search.seed + worker_index,
    )


def create_study(cfg: Config, url: str) -> optuna.Study:
    """Head only: creates (or reopens) the study and records what it searches."""
    storage = make_storage(url, cfg)
    study = optuna.create_study(
        storage=storage, study_name=cfg.search.study, directions=list(DIRECTIONS),
        sampler=make_sampler(cfg), load_if_exists=True,
    )
    if study.metric_names is None:
        study.set_metric_names(list(OBJECTIVES))
    return study


def load_studies(cfg: Config, url: str) -> list[optuna.Study]:
    """The studies of cfg's search: its own, or a global search's one per method (named by
    search.methods, or found as the studies that recorded cfg.search.study as theirs)."""
    if not _store_exists(url):
        raise _no_study(cfg, url)
    storage = make_storage(url, cfg)
    names = [c.search.study for c in method_configs(cfg)]
    if not cfg.search.methods:
        summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
        if cfg.search.study not in {s.study_name for s in summaries}:
            names = sorted(s.study_name for s in summaries
                           if s.user_attrs.get(GLOBAL_ATTR) == cfg.search.study)
    try:
        return [optuna.load_study(study_name=name, storage=storage, sampler=make_sampler(cfg))
                for name in names or [cfg.search.study]]
    except KeyError:
        raise _no_study(cfg, url) from None


def load_study(cfg: Config, url: str, worker_index: int = 0) -> optuna.Study:
    """An existing study (status, report, retrain, workers); never creates a study store."""
    if not _store_exists(url):
        raise _no_study(cfg, url)
    storage = make_storage(url, cfg)
    try:
        return optuna.load_study(study_name=cfg.search.study, storage=storage,
                                 sampler=make_sampler(cfg, worker_index))
    except KeyError:
        raise _no_study(cfg, url) from None
