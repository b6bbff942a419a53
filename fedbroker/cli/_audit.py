"""``fedbroker audit verify|subject``: check ``fed.audit`` and answer subject-access requests.

This is the composition layer: it reads the real topic with kafka-python and
hands the records to ``consent``'s pure verification and query functions. It
reads every partition from the beginning to the current end, so ``fed.audit``
must be kept with unlimited retention (``retention.ms=-1``): a chain whose start
was deleted reports its first records as missing.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consent import (
    AuditReport,
    audit_record_from_dict,
    audit_record_to_dict,
    decisions_concerning,
    load_directory,
    load_public_key,
    verify_audit,
)
from fedbroker._errors import CommandError
from fedbroker._topics import read_to_end
from schemas import AuditKind, AuditRecord

__all__ = ["AuditMessage", "audit", "read_audit_topic"]

DEFAULT_AUDIT_TOPIC = "fed.audit"
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_READ_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class AuditMessage:
    """One record of the topic with its Kafka coordinates, for reporting."""

    partition: int
    offset: int
    record: AuditRecord


def _avro_decoder() -> Callable[[bytes], AuditRecord]:
    # schemas.Codec is issue 4's; imported late so that `audit --help` never needs it.
    codec_class = getattr(importlib.import_module("schemas"), "Codec", None)
    if codec_class is None:
        raise CommandError("schemas.Codec is not available: cannot decode Avro audit records")
    codec = codec_class()

    def decode(data: bytes) -> AuditRecord:
        record = codec.decode_as(data, AuditRecord)
        assert isinstance(record, AuditRecord)
        return record

    return decode


def _json_decoder(data: bytes) -> AuditRecord:
    return audit_record_from_dict(json.loads(data))


def read_audit_topic(
    bootstrap: str,
    topic: str,
    decode: Callable[[bytes], AuditRecord],
    *,
    timeout_s: float = DEFAULT_READ_TIMEOUT_S,
) -> list[AuditMessage]:
    """Every record of every partition, from the beginning to the end offsets seen at start.

    Raises:
        CommandError: the topic does not exist, or the end was not reached in time.
    """
    records = read_to_end(bootstrap, topic, timeout_s=timeout_s, missing_ok=False)
    return [
        AuditMessage(r.partition, r.offset, decode(r.value or b""))
        for r in records  # already in (partition, offset) order
    ]


def _broker_key(
    directory: Path | None, trust_anchor: Path | None, broker_key: Path | None
) -> Ed25519PublicKey:
    key: object
    if broker_key is not None:
        key = load_public_key(broker_key, kind="signing")
    elif directory is not None and trust_anchor is not None:
        loaded = load_directory(directory, trust_anchor=trust_anchor, now=datetime.now(UTC))
        key = loaded.signing_key(loaded.broker.member_id)
    else:
        raise CommandError("give --directory with --trust-anchor, or --broker-key")
    assert isinstance(key, Ed25519PublicKey)
    return key


def _load_anchors(path: Path | None) -> list[AuditRecord]:
    if path is None or not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [audit_record_from_dict(item) for item in data["checkpoints"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise CommandError(f"cannot read anchors from {path}") from exc


def _save_anchors(path: Path, report: AuditReport, old: list[AuditRecord]) -> None:
    latest = {a.chain: a for a in old}
    for chain, summary in report.chains.items():
        if summary.last_checkpoint is not None:
            latest[chain] = summary.last_checkpoint
    body: dict[str, Any] = {
        "checkpoints": [audit_record_to_dict(latest[c]) for c in sorted(latest)],
    }
    path.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")


def _wire_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--wire",
        type=click.Choice(["avro", "json"]),
        default="avro",
        hidden=True,
        help="Record encoding on the topic (json: development only).",
    )(function)


def _common(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option(
                "--bootstrap",
                envvar="KAFKA_BOOTSTRAP_SERVERS",
                default=DEFAULT_BOOTSTRAP,
                show_default=True,
                help="Kafka bootstrap servers.",
            ),
            click.option("--topic", default=DEFAULT_AUDIT_TOPIC, show_default=True),
            click.option(
                "--timeout",
                "timeout_s",
                type=float,
                default=DEFAULT_READ_TIMEOUT_S,
                show_default=True,
                help="Seconds to read the topic to its end.",
            ),
        ]
    ):
        function = option(function)
    return _wire_option(function)


@click.group()
def audit() -> None:
    """Verify the audit trail and answer subject-access requests."""


@audit.command()
@_common
@click.option(
    "--directory",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Signed directory (gives the broker's public key).",
)
@click.option("--trust-anchor", type=click.Path(exists=True, path_type=Path), default=None)
@click.option(
    "--broker-key",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="The broker's Ed25519 public key, instead of --directory.",
)
@click.option(
    "--anchors",
    "anchors_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Checkpoints kept from earlier runs; a shorter chain is cut.",
)
@click.option("--save-anchors", is_flag=True, help="After a clean run, update --anchors.")
def verify(
    bootstrap: str,
    topic: str,
    timeout_s: float,
    wire: str,
    directory: Path | None,
    trust_anchor: Path | None,
    broker_key: Path | None,
    anchors_path: Path | None,
    save_anchors: bool,
) -> None:
    """Verify every chain in the audit topic; exit 1 on the first problem of any chain."""
    key = _broker_key(directory, trust_anchor, broker_key)
    decode = _json_decoder if wire == "json" else _avro_decoder()
    messages = read_audit_topic(bootstrap, topic, decode, timeout_s=timeout_s)
    anchors = _load_anchors(anchors_path)
    report = verify_audit([m.record for m in messages], key, anchors=anchors)
    click.echo(f"{topic}: {len(messages)} record(s) in {len(report.chains)} chain(s)")
    for chain, summary in report.chains.items():
        last = summary.last_checkpoint
        checkpoint = f"last checkpoint at seq {last.seq}" if last else "no checkpoint yet"
        click.echo(
            f"  chain {chain}: {summary.verified}/{summary.records} verified, head "
            f"{summary.head_hash.hex()[:16]}, {checkpoint}, {summary.unanchored} unanchored"
        )
    for problem in report.problems:
        where = ""
        if 0 <= problem.position < len(messages):
            at = messages[problem.position]
            where = f" [partition {at.partition} offset {at.offset}]"
        click.echo(f"PROBLEM {problem}{where}", err=True)
    if not report.ok:
        raise SystemExit(1)
    if save_anchors:
        if anchors_path is None:
            raise CommandError("--save-anchors needs --anchors FILE")
        _save_anchors(anchors_path, report, anchors)
        click.echo(f"anchors saved to {anchors_path}")
    click.echo("OK: every chain is intact")


@audit.command()
@_common
@click.option(
    "--token",
    "tokens",
    multiple=True,
    help="A token key (domain:epoch:hex) of the person; repeat for each.",
)
@click.option(
    "--linkage-keys",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Council side: compute the tokens from the person's details with these keys.",
)
@click.option("--given-name", default=None)
@click.option("--family-name", default=None)
@click.option("--date-of-birth", default=None)
@click.option("--dob-format", default="%Y-%m-%d", show_default=True)
@click.option("--nhs-number", default=None)
@click.option("--nino", default=None)
@click.option("--postcode", default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON lines.")
def subject(
    bootstrap: str,
    topic: str,
    timeout_s: float,
    wire: str,
    tokens: tuple[str, ...],
    linkage_keys: Path | None,
    given_name: str | None,
    family_name: str | None,
    date_of_birth: str | None,
    dob_format: str,
    nhs_number: str | None,
    nino: str | None,
    postcode: str | None,
    as_json: bool,
) -> None:
    """List every decision that concerned a person (a subject-access request).

    Run at a council: with --linkage-keys and the person's details the tokens are
    computed here by the connectors' tokeniser (nothing in clear leaves this
    process); or pass token keys with --token. The broker's side never needs
    the person's details in clear.
    """
    if linkage_keys is not None:
        from connectors import Tokeniser, load_linkage_keys, normalise_identity

        identity = normalise_identity(
            {
                "given_name": given_name,
                "family_name": family_name,
                "date_of_birth": date_of_birth,
                "nhs_number": nhs_number,
                "nino": nino,
                "postcode": postcode,
            },
            date_format=dob_format,
        )
        made = Tokeniser(load_linkage_keys(linkage_keys)).tokenise(identity)
        tokens = (*tokens, *(t.key() for t in made.tokens))
    if not tokens:
        raise CommandError("give --linkage-keys with the person's details, or --token")
    decode = _json_decoder if wire == "json" else _avro_decoder()
    messages = read_audit_topic(bootstrap, topic, decode, timeout_s=timeout_s)
    found = decisions_concerning([m.record for m in messages], tokens)
    if as_json:
        for record in found:
            click.echo(json.dumps(audit_record_to_dict(record), sort_keys=True))
        return
    click.echo(f"{len(found)} decision(s) concerned this person")
    for record in found:
        if record.kind is AuditKind.ERASURE:
            click.echo(f"  {record.decided_at.isoformat()} erasure of state ({record.decision_id})")
            continue
        outcome = record.outcome.value if record.outcome else "-"
        click.echo(
            f"  {record.decided_at.isoformat()} {outcome} agreement {record.agreement_id} "
            f"to {', '.join(record.recipients)} events {', '.join(record.event_ids)} "
            f"because {', '.join(record.reasons)} ({record.decision_id})"
        )
