"""Registers every command family on the main group."""

from memctl.cli import (  # noqa: F401
    compare_cmd,
    data_cmd,
    peft_cmd,
    run_cmd,
    search_cmd,
)
