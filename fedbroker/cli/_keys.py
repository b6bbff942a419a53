"""``fedbroker keys gen|show``: make and inspect Ed25519 and X25519 key pairs.

Councils, the broker and the combined authority need signing keys; subscriber
services need sealing keys. The private file is created 0600; the public file is
what goes into the directory.
"""

from __future__ import annotations

from pathlib import Path

import click

from consent import (
    generate_sealing_key,
    generate_signing_key,
    load_private_key,
    load_public_key,
    public_key_b64,
    write_key_pair,
)
from fedbroker._errors import CommandError

__all__ = ["keys"]


@click.group()
def keys() -> None:
    """Generate and inspect the federation's key pairs (PEM files)."""


@keys.command()
@click.option(
    "--kind",
    type=click.Choice(["signing", "sealing"]),
    required=True,
    help="signing: Ed25519 (councils, broker, authority); sealing: X25519 (services).",
)
@click.option(
    "--out",
    "prefix",
    type=click.Path(path_type=Path),
    required=True,
    help="Path prefix: writes PREFIX.key (0600) and PREFIX.pub.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing key file.")
def gen(kind: str, prefix: Path, force: bool) -> None:
    """Generate a key pair and print the public key in directory form."""
    private = prefix.with_name(prefix.name + ".key")
    if private.exists() and not force:
        raise CommandError(f"{private} exists; pass --force to replace it")
    key = generate_signing_key() if kind == "signing" else generate_sealing_key()
    paths = write_key_pair(key, prefix)
    alg = "ed25519" if kind == "signing" else "x25519"
    click.echo(f"wrote {paths.private} (0600) and {paths.public}")
    click.echo(f"{alg}:{public_key_b64(key)}")


@keys.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def show(path: Path) -> None:
    """Print the kind and directory form of a public or private key file."""
    text = path.read_text(encoding="ascii", errors="replace")
    key = load_private_key(path) if "PRIVATE KEY" in text else load_public_key(path)
    name = type(key).__name__.replace("PrivateKey", "").replace("PublicKey", "")
    alg = name.lower()
    kind = "signing" if alg == "ed25519" else "sealing"
    click.echo(f"{kind} key ({name}): {alg}:{public_key_b64(key)}")
