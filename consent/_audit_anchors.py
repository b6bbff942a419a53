"""The auditor's anchors: the last signed checkpoint seen per broker key and chain, on disk.

A chain cut back to an earlier checkpoint is consistent on its own; it shows
only against a checkpoint the auditor saw before. ``fedbroker audit verify``
therefore keeps one by default, reads it on every run and advances it after
each chain verifies, so catching a cut tail never depends on an operator
remembering a flag. Anchors are keyed by the broker's public key (a new broker
key starts new chains) and the chain id. A file that cannot be read is an
error, never "no anchors": silently starting afresh would forget what was seen.

Kept elsewhere (another machine, another operator), the same file makes the
verifier a *witness*: the broker's operator can rewrite the topic, but not the
witness's memory of what was already signed (docs/security.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consent._atomic import write_atomically
from consent._audit_records import audit_record_from_dict, audit_record_to_dict
from consent._audit_verify import AuditReport
from consent._errors import AuditInvalid
from consent._keys import public_key_b64
from schemas import AuditKind, AuditRecord

__all__ = ["ANCHORS_FORMAT", "load_anchors", "save_anchors"]

ANCHORS_FORMAT = "fedbroker-audit-anchors/1"


def _key_id(key: Ed25519PublicKey) -> str:
    return "ed25519:" + public_key_b64(key)


def _read(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != ANCHORS_FORMAT:
            raise ValueError("not an anchors file")
        keys = data["keys"]
        if not isinstance(keys, dict) or not all(isinstance(v, dict) for v in keys.values()):
            raise ValueError("malformed keys")
        return keys
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AuditInvalid(f"cannot read audit anchors {path}", reason="anchors-invalid") from exc


def load_anchors(path: Path, broker_key: Ed25519PublicKey) -> tuple[AuditRecord, ...]:
    """The anchors kept for ``broker_key``; none if the file does not exist yet.

    Raises:
        AuditInvalid: reason ``anchors-invalid``: the file exists but is unreadable.
    """
    chains = _read(path).get(_key_id(broker_key), {})
    try:
        anchors = tuple(audit_record_from_dict(chains[c]) for c in sorted(chains))
    except AuditInvalid as exc:
        raise AuditInvalid(f"cannot read audit anchors {path}", reason="anchors-invalid") from exc
    if any(a.kind is not AuditKind.CHECKPOINT for a in anchors):
        raise AuditInvalid(
            f"{path} holds an anchor that is not a checkpoint", reason="anchors-invalid"
        )
    return anchors


def save_anchors(path: Path, broker_key: Ed25519PublicKey, report: AuditReport) -> list[str]:
    """Advance the anchors to each intact chain's last checkpoint; never move one back.

    Only chains verified under ``broker_key`` are kept under it (a report over
    several keys is saved once per key).

    Returns:
        The chains whose anchor moved.
    """
    keys = _read(path)
    key_id = _key_id(broker_key)
    held: dict[str, Any] = dict(keys.get(key_id, {}))
    moved: list[str] = []
    for chain, summary in sorted(report.chains.items()):
        last = summary.last_checkpoint
        if last is None or not report.intact(chain):
            continue
        if summary.key is not None and _key_id(summary.key) != key_id:
            continue
        current = held.get(chain)
        if isinstance(current, Mapping) and int(current.get("seq", -1)) >= last.seq:
            continue
        held[chain] = audit_record_to_dict(last)
        moved.append(chain)
    if moved:
        keys[key_id] = held
        body = {"format": ANCHORS_FORMAT, "keys": keys}
        write_atomically(path, (json.dumps(body, indent=1, sort_keys=True) + "\n").encode())
    return moved
