"""Finding things in a study: the study itself, a chosen trial, its mask as a retrain
target, the config it was searched with, stale trials. Read-only unless asked to fix."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial

from memctl.config import Config, config_from_dict
from memctl.errors import UserError
from memctl.runs.target import RetrainTarget
from memctl.search.pareto import complete_trials, pick, pick_index
from memctl.search.space import mask_from_params
from memctl.search.study import load_studies, load_study, mask_url, storage_url

if TYPE_CHECKING:
    from memctl.search.objective import TrialContext


def with_study(cfg: Config, study: str | None = None, storage: str | None = None) -> Config:
    """cfg naming another study or storage (command-line flags win over the config)."""
    if study:
        cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, study=study))
    if storage:
        cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, storage=storage))
    return cfg


def open_study(cfg: Config) -> tuple[optuna.Study, str]:
    """The existing study of cfg.search and its storage URL with any password masked."""
    url = storage_url(cfg)
    return load_study(cfg, url), mask_url(url)


def open_studies(cfg: Config, method: str | None = None) -> tuple[list[optuna.Study], str]:
    """The studies of cfg's search (one, or a global search's one per method), `method`
    restricting them to that method's, and the storage URL with any password masked."""
    url = storage_url(cfg)
    studies = load_studies(cfg, url)
    if method is not None:
        mine = [s for s in studies if study_method(s) == method]
        if not mine:
            raise UserError(f"--method {method}: the search {cfg.search.study!r} has studies "
                            f"of {', '.join(study_method(s) for s in studies)}")
        studies = mine
    return studies, mask_url(url)


def study_method(study: optuna.Study) -> str:
    """The PEFT method a study searched, as its recorded config says."""
    return str(study.user_attrs.get("config", {}).get("peft", {}).get("method", ""))


def union_pick(studies: Sequence[optuna.Study]) -> tuple[optuna.Study, FrozenTrial]:
    """The pick over the union of the studies' fronts (one normalisation over all their
    complete trials), with its study."""
    pairs = [(s, t) for s in studies for t in complete_trials(s)]
    if not pairs:
        names = ", ".join(repr(s.study_name) for s in studies)
        raise UserError(f"study {names} has no complete trials yet")
    return pairs[pick_index([t for _, t in pairs])]


def chosen_trial(study: optuna.Study, trial_number: int | None = None) -> FrozenTrial:
    """Trial `trial_number`, which must be complete; None: the picked Pareto trial."""
    if trial_number is None:
        try:
            return pick(study)
        except ValueError as err:
            raise UserError(str(err)) from None
    matches = [t for t in study.get_trials(deepcopy=False) if t.number == trial_number]
    if not matches or matches[0].state.name != "COMPLETE":
        raise UserError(f"--trial {trial_number}: no complete trial with that number")
    return matches[0]


def searched_config(study: optuna.Study, cfg: Config, config_given: bool,
                    overrides: Sequence[str] = ()) -> Config:
    """The config the study was searched with (plus overrides), keeping cfg's search
    section; cfg itself when a config file was given or the study recorded none."""
    attrs = study.user_attrs
    if config_given or "config" not in attrs:
        return cfg
    return dataclasses.replace(config_from_dict(attrs["config"], overrides), search=cfg.search)


def trial_target(study: optuna.Study, trial: FrozenTrial, cfg: Config) -> RetrainTarget:
    """A trial's mask on the model, cache and D_mem rows the study searched with."""
    attrs = study.user_attrs
    return RetrainTarget(
        cfg, mask_from_params(trial.params, int(attrs["n_bits"])),
        list(attrs.get("block_names", [])), f"study {study.study_name} trial {trial.number}",
        attrs["model_dir"], attrs["cache_path"], list(attrs["dmem_indices"]),
        f"{study.study_name}-trial{trial.number}")


def study_target(cfg: Config, trial_number: int | None, config_given: bool,
                 overrides: Sequence[str] = (), method: str | None = None) -> RetrainTarget:
    """The retrain target of trial `trial_number` (None: the pick, over the union front of
    a global search) of the search of cfg.search (`method`: only that method's study), with
    the config it was searched with unless one was given."""
    studies, _ = open_studies(cfg, method)
    if trial_number is None:
        study, trial = union_pick(studies)
    elif len(studies) > 1:
        raise UserError(f"--trial {trial_number}: the search {cfg.search.study!r} has one "
                        f"study per method ({', '.join(s.study_name for s in studies)}); "
                        "name the method with --method")
    else:
        study, trial = studies[0], chosen_trial(studies[0], trial_number)
    cfg = searched_config(study, cfg, config_given, overrides)
    return trial_target(study, trial, cfg)


def fail_stale_trials(study: optuna.Study) -> list[int]:
    """Fails RUNNING trials whose worker stopped sending heartbeats; their numbers."""
    def running() -> set[int]:
        return {t.number for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING"}

    before = running()
    optuna.storages.fail_stale_trials(study)
    return sorted(before - running())


def worker_setup(cfg: Config, storage: str, study: str) -> tuple[Config, TrialContext]:
    """The searched config and the TrialContext a worker job of `study` runs trials with."""
    from memctl.data.cache import CacheReader
    from memctl.search.objective import TrialContext
    from memctl.workspace import proxy_set

    cfg = with_study(cfg, study=study)
    attrs = load_study(cfg, storage).user_attrs
    if "config" not in attrs:
        raise UserError(f"study {study!r} was not created by `memctl search`")
    cfg = config_from_dict(attrs["config"])
    proxy = proxy_set(cfg, CacheReader(attrs["cache_path"]))
    ctx = TrialContext(attrs["model_dir"], attrs["cache_path"], proxy.train_indices,
                       proxy.dmem_indices, int(attrs["n_bits"]), list(attrs["block_names"]))
    return cfg, ctx
