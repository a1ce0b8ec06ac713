"""One module per PEFT method; importing this package registers them all."""

from memctl.peft.methods import attention, freeze, full  # noqa: F401
