"""The ``fedbroker`` command: one click group, each subcommand in its own module.

Subcommands are imported lazily so that ``fedbroker kafka status`` does not pay
for loading Faust, and one broken subcommand cannot break the others.
"""

from __future__ import annotations

import importlib
import logging
import sys
import traceback
from pathlib import Path

import click

from schemas import FedbrokerError

__all__ = ["main"]

# name -> "module:attribute"; each module owns one command or group.
_COMMANDS = {
    "broker": "fedbroker.cli._broker:broker",
    "connector": "fedbroker.cli._connector:connector",
    "kafka": "fedbroker.cli._kafka:kafka",
    "keys": "fedbroker.cli._keys:keys",
    "link": "fedbroker.cli._link:link",
    "demo": "fedbroker.cli._demo:demo",
    "directory": "fedbroker.cli._directory:directory",
    "audit": "fedbroker.cli._audit:audit",
    "schemas": "fedbroker.cli._schemas:schemas",
    "subscribe": "fedbroker.cli._subscribe:subscribe",
    "synth": "fedbroker.cli._synth:synth",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup)
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO instead of WARNING.")
def cli(verbose: bool) -> None:
    """fedbroker: a federated data broker for combined authorities."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        logging.getLogger("kafka").setLevel(logging.ERROR)  # its retries are ours to report


def main() -> None:
    """Entry point: fedbroker errors become a one-line message and exit code 1.

    Any other exception is a bug; it becomes one line naming its type and where
    it was raised, never its message or traceback, which may hold the values
    being processed (a resident's details, a row's cells).
    """
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except FedbrokerError as exc:
        click.echo(f"error [{exc.reason}]: {exc}", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - a bug: its message may quote the values it met
        where = traceback.extract_tb(exc.__traceback__)[-1]
        click.echo(
            f"error [internal-error]: unexpected {type(exc).__name__} at "
            f"{Path(where.filename).name}:{where.lineno} (a bug; the message is withheld "
            "because it may quote personal data)",
            err=True,
        )
        sys.exit(1)
