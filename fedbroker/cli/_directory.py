"""``fedbroker directory sign|verify|dev|acls``: the signed federation directory.

The combined authority signs the directory with its Ed25519 key; everyone else
verifies it against that key (the trust anchor) before using any key, topic or
agreement in it. ``dev`` builds a complete development federation for demos.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consent import (
    KafkaSecurity,
    SerialStore,
    build_dev_federation,
    load_agreement,
    load_directory,
    load_private_key,
    sign_directory,
    write_atomically,
)
from fedbroker._acl_apply import apply_acls
from fedbroker._acls import AclNames, derive_acls, format_acls, strimzi_users
from fedbroker._errors import CommandError
from fedbroker._tls import ADMIN_PRINCIPAL
from fedbroker.cli._state_files import default_serials_path

__all__ = ["directory"]


def _when(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--at: '{value}' is not an ISO 8601 datetime") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@click.group()
def directory() -> None:
    """Sign, verify and build the federation directory."""


@directory.command()
@click.option(
    "--key",
    "key_path",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="The combined authority's Ed25519 private key (PEM).",
)
@click.option(
    "--in",
    "in_path",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="The directory document (YAML).",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Where to write the signed directory.",
)
def sign(key_path: Path, in_path: Path, out_path: Path) -> None:
    """Check the directory document and write it signed."""
    key = load_private_key(key_path)
    if not isinstance(key, Ed25519PrivateKey):
        raise CommandError("--key must be an Ed25519 signing key")
    # --out is often the live file: a reader (or a failed write) never sees half of it
    write_atomically(out_path, sign_directory(in_path.read_text(encoding="utf-8"), key))
    click.echo(f"signed {in_path} -> {out_path}")


@directory.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--trust-anchor",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="The combined authority's Ed25519 public key (PEM).",
)
@click.option("--at", "at", default=None, help="Check validity at this time (default: now).")
def verify(path: Path, trust_anchor: Path, at: str | None) -> None:
    """Verify a signed directory and summarise it; exit 1 if it is refused."""
    loaded = load_directory(path, trust_anchor=trust_anchor, now=_when(at))
    click.echo(
        f"directory serial {loaded.serial} signed by {loaded.authority}: valid "
        f"{loaded.issued_at.isoformat()} .. {loaded.expires_at.isoformat()}"
    )
    kinds = sorted({m.kind.value for m in loaded.members.values()})
    for kind in kinds:
        ids = sorted(m.member_id for m in loaded.members.values() if m.kind.value == kind)
        click.echo(f"  {kind} ({len(ids)}): {', '.join(ids)}")
    for agreement in sorted(loaded.agreements):
        click.echo(f"  agreement {agreement}")


@directory.command("check-agreement")
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--directory",
    "directory_path",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Signed directory whose members the agreement must name.",
)
@click.option("--trust-anchor", type=click.Path(exists=True, path_type=Path), default=None)
def check_agreement(
    paths: tuple[Path, ...], directory_path: Path | None, trust_anchor: Path | None
) -> None:
    """Validate agreement files, listing every problem with its line."""
    councils = services = None
    if directory_path is not None:
        if trust_anchor is None:
            raise CommandError("--directory needs --trust-anchor")
        loaded = load_directory(directory_path, trust_anchor=trust_anchor, now=datetime.now(UTC))
        councils = [m.member_id for m in loaded.councils]
        services = [m.member_id for m in loaded.services]
    for path in paths:
        agreement = load_agreement(path, councils=councils, services=services)
        click.echo(f"{path}: agreement {agreement.agreement_id} is valid")


@directory.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for keys/, directory.yaml and directory.signed.",
)
@click.option(
    "--council",
    "councils",
    multiple=True,
    help="GSS code of a member council (repeat; default: the ten GM boroughs).",
)
def dev(out_dir: Path, councils: tuple[str, ...]) -> None:
    """Build a development federation: fresh keys and a signed directory (not for production)."""
    federation = build_dev_federation(out_dir, councils=list(councils) or None)
    click.echo(f"directory: {federation.directory_path}")
    click.echo(f"trust anchor: {federation.trust_anchor}")
    click.echo(f"keys: {federation.folder / 'keys'}")


@directory.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--trust-anchor",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="The combined authority's Ed25519 public key (PEM).",
)
@click.option("--prefix", default="fed", show_default=True, help="Topic name prefix.")
@click.option("--app-id", default="fedbroker-broker", show_default=True, help="Broker app id.")
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "strimzi"]),
    default="text",
    show_default=True,
    help="One rule per line, or Strimzi KafkaUser resources (YAML).",
)
@click.option("--strimzi-cluster", default="fedbroker", show_default=True)
@click.option("--namespace", default=None, help="Namespace for the KafkaUser resources.")
@click.option(
    "--apply",
    "apply_",
    is_flag=True,
    help="Set them on the cluster and delete stale ones, as the admin principal whose "
    "credentials FEDBROKER_KAFKA_* give.",
)
@click.option("--bootstrap", envvar="KAFKA_BOOTSTRAP_SERVERS", default=None)
def acls(
    path: Path, trust_anchor: Path, prefix: str, app_id: str, output: str,
    strimzi_cluster: str, namespace: str | None, apply_: bool, bootstrap: str | None,
) -> None:  # fmt: skip
    """Print (or --apply) the Kafka ACLs the signed directory implies: nothing else is allowed."""
    loaded = load_directory(path, trust_anchor=trust_anchor, now=datetime.now(UTC))
    # an older directory, still valid, would grant a removed member its rights back
    SerialStore(default_serials_path()).accept(loaded)
    desired = derive_acls(loaded, AclNames(topic_prefix=prefix, app_id=app_id))
    if output == "strimzi":
        click.echo(strimzi_users(desired, cluster=strimzi_cluster, namespace=namespace), nl=False)
    else:
        click.echo(format_acls(desired))
    if apply_:
        if not bootstrap:
            raise CommandError("--apply needs --bootstrap or KAFKA_BOOTSTRAP_SERVERS")
        security = KafkaSecurity.from_env(os.environ)
        changes = apply_acls(bootstrap, security, desired, keep=[f"User:{ADMIN_PRINCIPAL}"])
        click.echo(
            f"applied: {len(changes.created)} created, {len(changes.deleted)} stale deleted",
            err=True,
        )
