"""Full fine-tuning. Bits still freeze their blocks; everything outside the blocks always
trains, so all ones is plain full fine-tuning of the U-Net."""

from __future__ import annotations

from memctl.peft._method import Method, Params


class Full(Method):
    name = "full"
    trains_outside = True

    def block(self, unet, target) -> Params:
        return dict(target.parameters(unet))

    extra = block


METHOD = Full
