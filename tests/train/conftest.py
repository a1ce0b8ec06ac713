"""Training tests run on a tiny U-Net; DeepSpeed ops come from the prebuilt folder."""

from __future__ import annotations

import pytest

from tests.conftest import require_dev_env


@pytest.fixture
def slurm_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = require_dev_env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
