"""NSGA-II whose per-ask bookkeeping does not grow with the study.

Optuna's NSGAIISampler, on every ask, scans every COMPLETE trial to find the current
generation, scans them again to collect a generation's population, and reads the study's
system attributes from the database to find the cached parent population. At thousands of
trials the scans dominate a worker's ask (8 ms of 14 ms per trial at 4,000 trials in one
process, and far more on shared cores); each scan is also one more read of the study from the
database, and the attribute read one more round trip, per ask.

COMPLETE is a final state and a trial's generation is written once, at its ask, so all of it
can be indexed incrementally: this sampler keeps, per process, the generation of every
COMPLETE trial it has seen and each generation's parent population once it is known, and
looks only at trials that completed since the last ask. It proposes exactly what the stock
sampler proposes for the same history and seed (tests/search/test_sampler.py), and writes the
same study and trial attributes under the stock sampler's keys, so studies mix freely with
processes running either.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from optuna.samplers import NSGAIISampler
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from optuna.study import Study


class CachedNSGAIISampler(NSGAIISampler):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._study: tuple[object, int] | None = None  # (storage, study id) indexed
        self._in_ask = False
        self._reset()

    def _reset(self) -> None:
        self._complete: dict[int, FrozenTrial] = {}  # trial_id -> trial, COMPLETE only
        self._by_generation: dict[int, list[FrozenTrial]] = {}
        self._generation_count: Counter[int] = Counter()
        self._parents: dict[int, list[FrozenTrial]] = {}

    # The stock class derives these keys from the class name; keep NSGAIISampler's.
    @classmethod
    def _get_generation_key(cls) -> str:
        return NSGAIISampler._get_generation_key()

    @classmethod
    def _get_parent_cache_key_prefix(cls) -> str:
        return NSGAIISampler._get_parent_cache_key_prefix()

    def _indexes(self, study: Study) -> bool:
        # Storage identity too: every in-memory storage numbers its first study 0.
        return (self._study is not None and self._study[0] is study._storage
                and self._study[1] == study._study_id)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict) -> dict:
        # One read of the study per ask: the generation, its population and its parents
        # all come from the index refreshed here (the stock sampler reads up to three times).
        self._refresh(study)
        self._in_ask = True
        try:
            return super().sample_relative(study, trial, search_space)
        finally:
            self._in_ask = False

    def _refresh(self, study: Study) -> None:
        """Indexes trials that became COMPLETE since the last call."""
        if self._in_ask and self._indexes(study):
            return
        if not self._indexes(study):  # one sampler, another study: start over
            self._study = (study._storage, study._study_id)
            self._reset()
        trials = study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True)
        new = len(trials) - len(self._complete)
        key = self._get_generation_key()
        # Trials complete in roughly the order they were asked, so new ones sit near the end.
        for trial in reversed(trials):
            if new <= 0:
                break
            if trial._trial_id in self._complete:
                continue
            new -= 1
            self._complete[trial._trial_id] = trial
            generation = trial.system_attrs.get(key, -1)
            self._generation_count[generation] += 1
            if generation >= 0:
                self._by_generation.setdefault(generation, []).append(trial)
                self._by_generation[generation].sort(key=lambda t: t.number)

    def get_trial_generation(self, study: Study, trial: FrozenTrial) -> int:
        generation = trial.system_attrs.get(self._get_generation_key(), None)
        if generation is not None:
            return generation
        self._refresh(study)
        # As the stock sampler: the highest generation among COMPLETE trials (trials without
        # one count as -1), or the next once that generation holds a full population.
        known = [g for g in self._generation_count if g >= 0]
        top = max(known, default=0)
        count = self._generation_count.get(top, 0)
        assert self._population_size is not None, "Population size must be set."
        generation = top if count < self._population_size else top + 1
        study._storage.set_trial_system_attr(trial._trial_id, self._get_generation_key(),
                                             generation)
        return generation

    def get_population(self, study: Study, generation: int) -> list[FrozenTrial]:
        self._refresh(study)
        return list(self._by_generation.get(generation, []))

    def get_parent_population(self, study: Study, generation: int) -> list[FrozenTrial]:
        if generation == 0:
            return []
        if self._indexes(study) and generation in self._parents:
            return list(self._parents[generation])
        self._refresh(study)
        key = self._get_parent_cache_key_prefix() + str(generation)
        ids = study._storage.get_study_system_attrs(study._study_id).get(key)
        if ids is None:
            chosen = self.select_parent(study, generation)
            study._storage.set_study_system_attr(study._study_id, key,
                                                 [t._trial_id for t in chosen])
            ids = [t._trial_id for t in chosen]
        else:  # another process chose them first: use its choice, as the stock sampler does
            chosen = None
        wanted = set(ids)
        # Later asks see the parents in trial order, as the stock sampler's re-read does.
        self._parents[generation] = sorted(
            (t for i, t in self._complete.items() if i in wanted), key=lambda t: t.number)
        return list(chosen if chosen is not None else self._parents[generation])
