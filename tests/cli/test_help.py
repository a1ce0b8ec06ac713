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


def test_every_command_has_an_example_and_explains_overrides():
    from memctl.cli.commands import EXAMPLES

    leaves = {path.removeprefix("memctl "): c for path, c in _commands(main)
              if not isinstance(c, click.Group)}
    assert set(EXAMPLES) == set(leaves)
    for path, command in leaves.items():
        ctx = click.Context(command, info_name=path)
        text = command.get_help(ctx)
        assert "Example:" in text and EXAMPLES[path] in text, path
        takes_overrides = any(p.name == "overrides" for p in command.params)
        assert ("SECTION.FIELD=VALUE sets one config field" in text) == takes_overrides, path
