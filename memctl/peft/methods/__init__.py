"""One module per PEFT method; importing this package registers them all."""

from memctl.peft.methods import attention, difffit, freeze, full, lora, svdiff  # noqa: F401
