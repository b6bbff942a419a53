"""The broker's audit signing key, for the commands that check its signatures.

Taken from the signed directory (verified against the trust anchor, and
refused if older than one accepted before) or from a public key file.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consent import SerialStore, load_directory, load_public_key
from fedbroker._errors import CommandError
from fedbroker.cli._state_files import default_serials_path

__all__ = ["broker_key_options", "load_broker_key"]

_Command = TypeVar("_Command", bound=Callable[..., object])


def broker_key_options(directory_help: str) -> Callable[[_Command], _Command]:
    """``--directory`` with ``--trust-anchor``, or ``--broker-key``."""

    def add(command: _Command) -> _Command:
        # Applied bottom-up, as decorators are: --directory is listed first in --help.
        command = click.option(
            "--broker-key",
            type=click.Path(exists=True, path_type=Path),
            default=None,
            help="The broker's Ed25519 public key, instead of --directory.",
        )(command)
        command = click.option(
            "--trust-anchor", type=click.Path(exists=True, path_type=Path), default=None
        )(command)
        return click.option(
            "--directory",
            type=click.Path(exists=True, path_type=Path),
            default=None,
            help=directory_help,
        )(command)

    return add


def load_broker_key(
    directory: Path | None, trust_anchor: Path | None, broker_key: Path | None
) -> Ed25519PublicKey:
    """The key named by the options.

    Raises:
        CommandError: neither a directory with its trust anchor nor a key file given,
            or a key file together with either.
    """
    key: object
    if broker_key is not None and (directory is not None or trust_anchor is not None):
        # one would silently win: the auditor must know which root of trust was used
        raise CommandError("give --directory with --trust-anchor, or --broker-key, not both")
    if broker_key is not None:
        key = load_public_key(broker_key, kind="signing")
    elif directory is not None and trust_anchor is not None:
        loaded = load_directory(directory, trust_anchor=trust_anchor, now=datetime.now(UTC))
        SerialStore(default_serials_path()).accept(loaded)  # an older directory: refused
        key = loaded.signing_key(loaded.broker.member_id)
    else:
        raise CommandError("give --directory with --trust-anchor, or --broker-key")
    assert isinstance(key, Ed25519PublicKey)
    return key
