"""Debug executor: jobs run in this process when their results are asked for."""

from __future__ import annotations

from memctl.launch.backends.base import Backend


class DebugBackend(Backend):
    name = "debug"
    runs_container = False
    runs_in_process = True


BACKEND = DebugBackend()
