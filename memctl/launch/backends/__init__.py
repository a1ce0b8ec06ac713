"""Executor backends, one module each behind one interface (submitit's own layout).

    backend = get_backend("slurm")
    backend.parameters(slurm_cfg, name=..., workers=..., threads_per_worker=...)

BACKENDS maps the `--executor` names to modules, imported only when used; a new backend is
one module defining `BACKEND` plus its line here.
"""

from __future__ import annotations

import importlib

from memctl.errors import UserError
from memctl.launch.backends.base import SIGNAL_DELAY_S, Backend

BACKENDS: dict[str, str] = {
    "local": "memctl.launch.backends.local",
    "debug": "memctl.launch.backends.debug",
    "slurm": "memctl.launch.backends.slurm",
}


def get_backend(kind: str) -> Backend:
    if kind not in BACKENDS:
        raise UserError(f"--executor {kind!r}: must be one of {', '.join(BACKENDS)}")
    return importlib.import_module(BACKENDS[kind]).BACKEND


__all__ = ["BACKENDS", "SIGNAL_DELAY_S", "Backend", "get_backend"]
