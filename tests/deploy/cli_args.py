"""Checks a deployment's command line against the real ``fedbroker`` command tree, so a
renamed subcommand or option fails a test instead of a container at start-up."""

from __future__ import annotations

from collections.abc import Sequence

import click

from fedbroker.cli import cli


def refused(args: Sequence[str]) -> list[str]:
    """The subcommands and options in ``args`` that ``fedbroker`` does not have."""
    command: click.Command = cli
    ctx = click.Context(cli)
    rest = list(args)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        found = command.get_command(ctx, rest[0])
        if found is None:
            return [rest[0]]
        command, rest = found, rest[1:]
    known = {opt for param in command.params for opt in getattr(param, "opts", [])}
    return [a.split("=", 1)[0] for a in rest
            if a.startswith("--") and a.split("=", 1)[0] not in known]  # fmt: skip
