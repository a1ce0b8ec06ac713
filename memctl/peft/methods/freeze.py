"""The frozen baseline: nothing trains, whatever the mask."""

from __future__ import annotations

from memctl.peft._method import Method, Params


class Freeze(Method):
    name = "freeze"

    def block(self, unet, target) -> Params:
        return {}

    extra = block


METHOD = Freeze
