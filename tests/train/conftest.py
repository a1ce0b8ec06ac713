"""Training tests run on a tiny U-Net; DeepSpeed ops come from the prebuilt folder."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from tests.train._tiny import REPO


def dev_cluster_env() -> dict[str, str] | None:
    """The dev cluster's env file (slurm/dev/up.sh), or None when it is not running."""
    state = os.environ.get("MEMCTL_DEV_STATE")
    path = (Path(state) if state else REPO / ".dev-cluster") / "env"
    if not path.is_file():
        return None
    env = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            env[key] = value
    return env


@pytest.fixture
def slurm_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = dev_cluster_env()
    if env is None:
        msg = "dev cluster not running: slurm/dev/install.sh && slurm/dev/up.sh"
        if os.environ.get("MEMCTL_REQUIRE_INFRA") == "1":
            pytest.fail(msg + " (MEMCTL_REQUIRE_INFRA=1)", pytrace=False)
        pytest.skip(msg)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
