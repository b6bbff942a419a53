"""A complete, signed development federation in one call: keys, directory, agreements.

The demo, the connectors' and the broker's tests all need the same thing: a
combined authority, some councils, their services and a broker, each with fresh
keys on disk, and a directory signed by the authority that embeds the example
agreements. Building it by hand in every test would drift; this is the one way.
Never use it for production keys: it writes unencrypted private keys to a folder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from consent._directory import DIRECTORY_FORMAT, Directory
from consent._directory_signing import load_directory, sign_directory
from consent._keys import (
    KeyPairPaths,
    generate_sealing_key,
    generate_signing_key,
    load_private_key,
    public_key_b64,
    write_key_pair,
)

__all__ = [
    "AGREEMENTS_DIR",
    "DEFAULT_DIRECTORY_VALIDITY",
    "GM_COUNCILS",
    "DevFederation",
    "MemberKeys",
    "build_dev_federation",
    "example_agreement_paths",
]

AGREEMENTS_DIR = Path(__file__).resolve().parent / "agreements"
"""Where the three example Greater Manchester agreements live."""

DEFAULT_DIRECTORY_VALIDITY = timedelta(days=30)
AUTHORITY_ID = "gmca"
BROKER_ID = "broker"

GM_COUNCILS: Mapping[str, str] = MappingProxyType(
    {
        "E08000001": "Bolton Council",
        "E08000002": "Bury Council",
        "E08000003": "Manchester City Council",
        "E08000004": "Oldham Council",
        "E08000005": "Rochdale Borough Council",
        "E08000006": "Salford City Council",
        "E08000007": "Stockport Council",
        "E08000008": "Tameside Council",
        "E08000009": "Trafford Council",
        "E08000010": "Wigan Council",
    }
)
"""The ten Greater Manchester boroughs by ONS GSS code."""

_COUNCIL_SERVICES = ("revenues", "electoral-registration")
_AUTHORITY_SERVICES = ("gmca.supporting-families",)


@dataclass(frozen=True, slots=True)
class MemberKeys:
    """The key files of one member (None where the member has no key of that kind)."""

    signing: KeyPairPaths | None = None
    sealing: KeyPairPaths | None = None


@dataclass(frozen=True, slots=True)
class DevFederation:
    """What ``build_dev_federation`` wrote, and how to load it back."""

    folder: Path
    directory_path: Path
    document_path: Path
    trust_anchor: Path
    authority: str
    broker: str
    councils: tuple[str, ...]
    services: tuple[str, ...]
    keys: Mapping[str, MemberKeys]

    def signing_key(self, member_id: str) -> Ed25519PrivateKey:
        """The member's Ed25519 private key (councils, broker, authority)."""
        pair = self.keys[member_id].signing
        if pair is None:
            raise KeyError(member_id)
        key = load_private_key(pair.private)
        assert isinstance(key, Ed25519PrivateKey)
        return key

    def sealing_key(self, member_id: str) -> X25519PrivateKey:
        """The member's X25519 private key (services)."""
        pair = self.keys[member_id].sealing
        if pair is None:
            raise KeyError(member_id)
        key = load_private_key(pair.private)
        assert isinstance(key, X25519PrivateKey)
        return key

    def load(self, now: datetime | None = None) -> Directory:
        """The verified directory, as every component would load it."""
        return load_directory(
            self.directory_path, trust_anchor=self.trust_anchor, now=now or datetime.now(UTC)
        )


def example_agreement_paths() -> tuple[Path, ...]:
    """The example agreements shipped in ``consent/agreements/``, sorted."""
    return tuple(sorted(AGREEMENTS_DIR.glob("*.yaml")))


def _default_services(councils: Sequence[str]) -> dict[str, str | None]:
    services: dict[str, str | None] = {
        f"{gss}.{name}": gss for gss in councils for name in _COUNCIL_SERVICES
    }
    services.update(dict.fromkeys(_AUTHORITY_SERVICES))
    return services


def _restricted(
    authored: dict[str, Any], councils: set[str], services: set[str]
) -> dict[str, Any] | None:
    """The agreement narrowed to the members present; None if nothing is left of it."""
    controllers = [c for c in authored.get("controllers", []) if c in councils]
    recipients = [r for r in authored.get("recipients", []) if r in services]
    if not controllers or not recipients:
        return None
    return {**authored, "controllers": controllers, "recipients": recipients}


def build_dev_federation(
    folder: Path | str,
    *,
    councils: Sequence[str] | None = None,
    services: Mapping[str, str | None] | None = None,
    agreements: Sequence[Path | str] | None = None,
    now: datetime | None = None,
    validity: timedelta = DEFAULT_DIRECTORY_VALIDITY,
) -> DevFederation:
    """Generate keys for every member, write and sign a directory, return the paths.

    Args:
        folder: where to write ``keys/``, ``directory.yaml`` and ``directory.signed``.
        councils: GSS codes (default None: the ten Greater Manchester boroughs).
        services: service id -> owning council GSS or None (default None: each
            council's ``<gss>.revenues`` and ``<gss>.electoral-registration`` and
            ``gmca.supporting-families``).
        agreements: agreement YAML files to embed (default None: the examples),
            each narrowed to the councils and services present.
        now: issue time (default None: the current time).
        validity: how long the directory is valid (default 30 days).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    issued = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    council_ids = list(councils) if councils is not None else list(GM_COUNCILS)
    service_map = dict(services) if services is not None else _default_services(council_ids)
    keydir = folder / "keys"
    keys: dict[str, MemberKeys] = {}
    members: list[dict[str, Any]] = []

    def add(member_id: str, kind: str, name: str, **extra: Any) -> None:
        signing = sealing = None
        entry: dict[str, Any] = {"id": member_id, "kind": kind, "name": name, **extra}
        if kind != "service":
            signing_key = generate_signing_key()
            signing = write_key_pair(signing_key, keydir / f"{member_id}.signing")
            entry["signing_key"] = "ed25519:" + public_key_b64(signing_key)
        if kind in ("service", "authority"):
            sealing_key = generate_sealing_key()
            sealing = write_key_pair(sealing_key, keydir / f"{member_id}.sealing")
            entry["sealing_key"] = "x25519:" + public_key_b64(sealing_key)
        keys[member_id] = MemberKeys(signing, sealing)
        members.append(entry)

    add(AUTHORITY_ID, "authority", "Greater Manchester Combined Authority")
    add(BROKER_ID, "broker", "fedbroker broker")
    for gss in council_ids:
        add(gss, "council", GM_COUNCILS.get(gss, f"Council {gss}"))
    for service_id, owner in sorted(service_map.items()):
        extra = {"council": owner} if owner else {}
        add(service_id, "service", service_id, **extra)

    embedded = []
    for path in agreements if agreements is not None else example_agreement_paths():
        authored = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        narrowed = _restricted(authored, set(council_ids), set(service_map))
        if narrowed is not None:
            embedded.append(narrowed)
    document = {
        "format": DIRECTORY_FORMAT,
        "serial": 1,
        "authority": AUTHORITY_ID,
        "issued_at": issued.isoformat(),
        "expires_at": (issued + validity).isoformat(),
        "members": members,
        "agreements": embedded,
    }
    text = yaml.safe_dump(document, sort_keys=False, width=100)
    document_path = folder / "directory.yaml"
    document_path.write_text(text, encoding="utf-8")
    directory_path = folder / "directory.signed"
    authority_key = load_private_key(keys[AUTHORITY_ID].signing.private)  # type: ignore[union-attr]
    assert isinstance(authority_key, Ed25519PrivateKey)
    directory_path.write_bytes(sign_directory(text, authority_key))
    anchor = keys[AUTHORITY_ID].signing.public  # type: ignore[union-attr]
    return DevFederation(
        folder=folder,
        directory_path=directory_path,
        document_path=document_path,
        trust_anchor=anchor,
        authority=AUTHORITY_ID,
        broker=BROKER_ID,
        councils=tuple(council_ids),
        services=tuple(sorted(service_map)),
        keys=MappingProxyType(keys),
    )
