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

__all__ = ["broker_key_options", "load_broker_key", "load_previous_keys"]

_Command = TypeVar("_Command", bound=Callable[..., object])


def broker_key_options(directory_help: str) -> Callable[[_Command], _Command]:
    """``--directory`` with ``--trust-anchor``, or ``--broker-key``; ``--previous-broker-key``."""

    def add(command: _Command) -> _Command:
        # Applied bottom-up, as decorators are: --directory is listed first in --help.
        command = click.option(
            "--previous-broker-key",
            "previous_broker_keys",
            type=click.Path(exists=True, path_type=Path),
            multiple=True,
            help="A key the broker signed with before a rotation (repeatable): "
            "its chains are verified under it.",
        )(command)
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


def load_previous_keys(paths: tuple[Path, ...]) -> tuple[Ed25519PublicKey, ...]:
    """The broker's earlier signing keys, from public key files (``--previous-broker-key``).

    A chain is the broker's under the key that signed it; the broker starts new
    chains under a new key, so chains signed before a rotation verify only
    under the key they were signed with. Give one that was retired, not one
    that was compromised: whatever it signs verifies.
    """
    keys = []
    for path in paths:
        key = load_public_key(path, kind="signing")
        assert isinstance(key, Ed25519PublicKey)
        keys.append(key)
    return tuple(keys)
