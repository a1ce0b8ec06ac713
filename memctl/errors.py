"""Error types that map to the CLI's exit codes."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or configuration: the CLI prints one line and exits with code 2.

    The message must name the file, field or value at fault.
    """

    exit_code = 2


class Interrupted(Exception):
    """A run stopped on request (Ctrl-C) after putting its work in order: the CLI prints the
    message as one line and exits 130, the shell's code for an interrupt."""

    exit_code = 130
