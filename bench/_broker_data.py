"""The broker bench's input: a dev federation, synthetic councils, signed events, the truth.

Events are built once, offline, by the connector's own ``EventFactory``
(tokenise, Bloom-encode, seal, sign), so that no timed run pays for the
connector. Each event keeps the person it belongs to (from ``truth.csv``), so
the pairs the streaming broker reports can be scored.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker import Matcher, Sighting, ThresholdFit, choose_threshold, fit_threshold, run_batch
from broker._partition import retention_for
from connectors import (
    EventFactory,
    InvalidIdentifier,
    SourceRow,
    Tokeniser,
    generate_federation,
    generate_linkage_key,
    load_linkage_keys,
    load_mapping,
)
from consent import (
    DevFederation,
    Directory,
    build_dev_federation,
    notify_topic,
    open_envelope,
    write_secret_file,
)
from consent import seal_envelope as seal
from schemas import CitizenEvent, Codec, MatchNotification, SignatureDomain

__all__ = [
    "COUNCILS",
    "BenchData",
    "BenchEvent",
    "build_data",
    "notify_topics",
    "open_notification",
    "resigned",
]

COUNCILS = ("E08000001", "E08000002", "E08000003")


@dataclass(frozen=True, slots=True)
class BenchEvent:
    """One signed event, ready to send, with what scoring needs to know about it."""

    event: CitizenEvent
    topic_suffix: str  # "events.<gss>"
    key: bytes
    value: bytes
    person: str
    kept: bool  # some agreement uses it, so the broker keeps it to match later ones
    routed: int  # (event, token) matching steps it becomes (its tokens)


@dataclass(frozen=True, slots=True)
class BenchData:
    """Everything a run needs: the federation's files and the events, in send order."""

    federation: DevFederation
    events: tuple[BenchEvent, ...]
    fit: ThresholdFit
    people: int
    rows: int

    @property
    def routed(self) -> int:
        return sum(e.routed for e in self.events)

    def signing_keys(self) -> dict[str, Ed25519PrivateKey]:
        return {c: self.federation.signing_key(c) for c in COUNCILS}


def resigned(
    item: BenchEvent, key: Ed25519PrivateKey, codec: Codec, now: datetime
) -> tuple[CitizenEvent, bytes]:
    """The same event published at ``now`` (the signature covers ``published_at``)."""
    event = replace(item.event, published_at=now)
    return event, seal(SignatureDomain.EVENT, event, key, event.source_council, codec=codec)


def notify_topics(prefix: str, directory: Directory) -> list[str]:
    """Every service's notification topic, as the broker writes them."""
    return [notify_topic(prefix, s.member_id) for s in directory.services]


def open_notification(raw: bytes, directory: Directory, codec: Codec) -> MatchNotification:
    """A notification as a service reads it: its envelope verified, then decoded."""
    broker = directory.broker
    notification, _ = open_envelope(
        raw,
        SignatureDomain.NOTIFICATION,
        lambda signer: broker.signing_key if signer == broker.member_id else None,
        codec=codec,
    )
    assert isinstance(notification, MatchNotification)
    return notification


def build_data(work: Path, *, people: int, seed: int) -> BenchData:
    """Write the federation and the synthetic councils under ``work``; build the events."""
    federation = build_dev_federation(work / "federation", councils=list(COUNCILS))
    directory = federation.load()
    synth = generate_federation(work / "synth", councils=COUNCILS, people=people, seed=seed)
    keys_path = work / "linkage.json"
    write_secret_file(keys_path, json.dumps({"1": generate_linkage_key(1).secret.hex()}).encode())
    keys = load_linkage_keys(keys_path)
    mapping = load_mapping(synth.mapping)
    with synth.truth.open(newline="", encoding="utf-8") as handle:
        person_of = {(r["council"], r["ref"]): r["person_id"] for r in csv.DictReader(handle)}
    codec = Codec()
    now = datetime.now(UTC)
    built: list[tuple[datetime, str, BenchEvent]] = []
    for council in COUNCILS:
        factory = EventFactory(council, federation.signing_key(council), directory,
                               Tokeniser(keys), keys[-1])  # fmt: skip
        with synth.files[council].open(newline="", encoding="utf-8") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                try:
                    event = factory.event(SourceRow(council, number, row), mapping, now=now)
                except InvalidIdentifier:
                    continue  # the connector would quarantine it
                retention = retention_for(directory, event)
                sighting = Sighting.from_event(event, retention=retention)
                key = event.tokens[0].key() if event.tokens else event.event_id
                item = BenchEvent(
                    event=event,
                    topic_suffix=f"events.{council}",
                    key=key.encode("ascii"),
                    value=factory.envelope(event, codec),
                    person=person_of[(council, row["ref"])],
                    kept=retention.total_seconds() > 0,
                    routed=len(sighting.all_tokens()),
                )
                built.append((event.occurred_at, event.event_id, item))
    built.sort(key=lambda b: (b[0], b[1]))  # the order the councils' systems saw them
    events = tuple(b[2] for b in built)
    sightings = [Sighting.from_event(e.event, retention=None) for e in events]
    # What the broker's refit converges to: EM over the blocked pairs' Dice scores.
    fit = choose_threshold(None, fit_threshold(run_batch(sightings, Matcher(0.0)).scores))
    return BenchData(federation, events, fit, people, synth.rows)
