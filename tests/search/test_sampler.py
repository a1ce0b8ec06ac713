"""The incremental NSGA-II proposes exactly what Optuna's NSGAIISampler proposes."""

import numpy as np
import optuna
import pytest

from memctl.search.sampler import CachedNSGAIISampler
from memctl.search.space import suggest_mask

W1, W2 = np.linspace(1.0, 2.0, 16), np.linspace(2.0, 1.0, 16) ** 2


def _history(sampler_cls, n_trials: int, in_flight: int, storage=None) -> list:
    """Runs a study with `in_flight` trials asked before the oldest is told (as concurrent
    workers do), so trials complete out of order and generations overfill."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "minimize"], storage=storage,
                                sampler=sampler_cls(population_size=6, seed=3))
    pending, rng = [], np.random.default_rng(0)
    for _ in range(n_trials):
        trial = study.ask()
        pending.append((trial, np.array(suggest_mask(trial, 16), dtype=float)))
        while len(pending) >= in_flight:
            t, bits = pending.pop(int(rng.integers(len(pending))))  # out of order
            if rng.random() < 0.1:
                study.tell(t, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(t, (float(bits @ W1), float((1 - bits) @ W2)))
    key = "NSGAIISampler:generation"
    return [(t.number, t.state.name, t.params, t.system_attrs.get(key)) for t in study.trials]


@pytest.mark.parametrize("in_flight", [1, 4])
def test_same_proposals_and_generations_as_optuna(in_flight):
    stock = _history(optuna.samplers.NSGAIISampler, 150, in_flight)
    cached = _history(CachedNSGAIISampler, 150, in_flight)
    assert max(g for *_, g in stock) >= 10  # many generations were exercised
    assert cached == stock


def test_same_on_a_database_storage(tmp_path):
    url = f"sqlite:///{tmp_path}/a.db"
    stock = _history(optuna.samplers.NSGAIISampler, 60, 3, storage=url)
    cached = _history(CachedNSGAIISampler, 60, 3, storage=f"sqlite:///{tmp_path}/b.db")
    assert cached == stock


def test_one_sampler_moving_to_another_study_starts_over():
    sampler = CachedNSGAIISampler(population_size=4, seed=0)
    for _ in range(2):
        study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)),
                       n_trials=12)
        gens = [t.system_attrs["NSGAIISampler:generation"] for t in study.trials]
        assert gens == [0] * 4 + [1] * 4 + [2] * 4
