"""Shared fixtures: the embedded model, dataset and cache, built once per test session."""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path

import pytest

from memctl.config import Config, load_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]


# Overrides that shrink the embedded default for end-to-end runs through the CLI.
SMALL = [
    "data.synth_n=60", "data.dmem_size=4", "data.dmem_repeats=4", "train.steps=6",
    "train.retrain_steps=6", "train.batch_size=4", "train.lr=1e-3", "eval.fid_samples=6",
    "eval.num_inference_steps=3", "eval.dmem_timesteps=[200,700]", "eval.dmem_noise_seeds=1",
    "search.population_size=2",
]


def small_config(run_dir: Path, **sections) -> Config:
    """The embedded default shrunk further so a trial takes a few seconds."""
    cfg = load_config(None, [
        f"run_dir={run_dir}", "data.synth_n=60", "data.dmem_size=4", "data.dmem_repeats=4",
        "train.steps=6", "train.retrain_steps=6", "train.batch_size=4", "train.lr=1e-3",
        "eval.fid_samples=6", "eval.num_inference_steps=3", "eval.dmem_timesteps=[200,700]",
        "eval.dmem_noise_seeds=1", "search.population_size=2",
    ])
    for name, changes in sections.items():
        cfg = dataclasses.replace(cfg, **{name: dataclasses.replace(getattr(cfg, name), **changes)})
    return cfg


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from memctl.models.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="session")
def prepared(tmp_path_factory, tiny_model_dir):
    """(cfg, workspace) with the small synthetic dataset cached against the tiny model."""
    from memctl.workspace import prepare

    run_dir = tmp_path_factory.mktemp("run")
    cfg = small_config(run_dir)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, path=str(tiny_model_dir)))
    return cfg, prepare(cfg)


def read_dev_env() -> dict[str, str] | None:
    """The `export KEY=value` lines of the dev cluster's env file (slurm/dev/up.sh), or None."""
    import shlex

    state = os.environ.get("MEMCTL_DEV_STATE")
    path = (Path(state) if state else REPO / ".dev-cluster") / "env"
    if not path.is_file():
        return None
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            env[key] = value
    return env


def skip_or_fail(msg: str) -> typing.NoReturn:
    """Skips a test whose infrastructure is missing, but fails under MEMCTL_REQUIRE_INFRA=1
    (the test command), so CI never silently skips the SLURM, PostgreSQL or browser tests."""
    if os.environ.get("MEMCTL_REQUIRE_INFRA") == "1":
        pytest.fail(msg + " (MEMCTL_REQUIRE_INFRA=1)", pytrace=False)
    pytest.skip(msg)


def require_dev_env() -> dict[str, str]:
    """The dev cluster's variables; skips (or fails, see skip_or_fail) without it."""
    env = read_dev_env()
    if env is None:
        skip_or_fail("dev cluster env file not found: run slurm/dev/install.sh && "
                     "slurm/dev/up.sh")
    return env


@pytest.fixture(scope="session")
def dev_cluster() -> dict[str, str]:
    """Variables of the running dev cluster, exported into os.environ for child processes."""
    env = require_dev_env()
    os.environ.update(env)
    return env
