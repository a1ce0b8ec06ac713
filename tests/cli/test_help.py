"""Every command and option explains itself in --help."""

from __future__ import annotations

from collections.abc import Iterator

import click

from memctl.cli import main


def _commands(group: click.Group, path: str = "memctl") -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        yield f"{path} {name}", command
        if isinstance(command, click.Group):
            yield from _commands(command, f"{path} {name}")


def test_every_command_and_option_has_help():
    missing = []
    for path, command in [("memctl", main), *_commands(main)]:
        if not (command.help or "").strip():
            missing.append(path)
        for param in command.params:
            if isinstance(param, click.Option) and not (param.help or "").strip():
                missing.append(f"{path} {param.opts[0]}")
    assert not missing, f"without help text: {', '.join(missing)}"
