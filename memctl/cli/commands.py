"""Registers every command family on the main group."""

from memctl.cli import data_cmd, run_cmd, search_cmd  # noqa: F401
