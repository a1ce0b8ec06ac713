"""Registers every command family on the main group."""

from memctl.cli import (  # noqa: F401
    data_cmd,
    peft_cmd,  # noqa: F401
    run_cmd,
    search_cmd,
)
