"""Poison between good messages, end to end through real Kafka and one worker (issue 11).

One message of each poison kind is put on a council's topics between two
residents' ordinary moves: forged, replayed, published in the future, with an
``occurred_at`` of 9999-12-31 (which used to crash the verify agent at every
restart), a consent record dated 2062, oversized, malformed, signed by another
council, and truncated. Every good move is still matched, notified and
audited; each bad message lands on ``<prefix>.rejected`` with its reason and
nothing personal; the worker is still running at the end.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType

import pytest
from kafka import KafkaProducer

from connectors import EventFactory, SourceRow, Tokeniser, load_linkage_keys, load_mapping
from connectors._tokens import opaque_reference
from schemas import (
    AuditKind,
    AuditRecord,
    CitizenEvent,
    Codec,
    ConsentRecord,
    ConsentState,
    RejectedRecord,
    SignedEnvelope,
)
from tests.broker.test_decisions_e2e import _drop
from tests.broker.workers import audit_sealed, settled, start_worker, stop_worker, until
from tests.connectors.conftest import COUNCILS, read_topic, run_connector
from tests.wire import body_of, read_notifications

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

A, B = COUNCILS[0], COUNCILS[1]
AGREEMENT = "gm-cross-boundary-move"
DAY0 = date.today() - timedelta(days=20)
PEOPLE = {"first": ("Maya", "Okafor", "02/02/1982"), "second": ("Tom", "Hallworth", "09/09/1979")}
EXPECTED = {
    "bad-signature", "duplicate", "from-the-future", "occurred-in-future", "recorded-in-future",
    "too-large", "bad-marker", "wrong-council", "truncated",
}  # fmt: skip


def _row(person: str, council: str, event: str, when: date) -> dict[str, str]:
    given, family, dob = PEOPLE[person]
    return {"ref": f"{person}@{council}", "forename": given, "surname": family, "dob": dob,
            "postcode": "M1 1AE", "address_1": "1 Piccadilly", "uprn": "", "nhs_no": "",
            "ni_number": "", "event": event, "event_date": when.isoformat()}  # fmt: skip


def _factory(setup) -> EventFactory:
    keys = load_linkage_keys(setup.linkage_keys)
    key = setup.federation.signing_key(setup.council)
    return EventFactory(setup.council, key, setup.federation.load(), Tokeniser(keys), keys[-1])


def _signed(setup, row: dict[str, str], **changes: object) -> bytes:
    """An event the council's own key signs, with ``changes`` made before signing."""
    factory = _factory(setup)
    event = factory.event(SourceRow("poison.csv", 2, row), load_mapping(setup.synth.mapping),
                          now=datetime.now(UTC))  # fmt: skip
    return factory.envelope(replace(event, **changes), Codec())


def _poison(a, b, codec: Codec, good: tuple[bytes, bytes]) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) of one message of each poison kind."""
    key, value = good
    event = body_of(codec, value, CitizenEvent)
    row = _row("first", A, "CT_CLOSE", DAY0)
    now = datetime.now(UTC)
    far = _signed(a, row, event_id="9" * 32, occurred_at=datetime(9999, 12, 31, tzinfo=UTC))
    ahead = _signed(a, row, event_id="8" * 32, published_at=now + timedelta(days=2),
                    occurred_at=now + timedelta(days=2))  # fmt: skip
    other = _signed(b, _row("first", B, "MOVE", DAY0))
    padding = MappingProxyType({f"k{i}": "x" * 7700 for i in range(100)})
    bloated = replace(event, event_id="7" * 32, attributes=padding)  # and unsigned
    consent = ConsentRecord("6" * 32, A, event.tokens, "*", ConsentState.GRANTED,
                            datetime(2062, 1, 1, tzinfo=UTC), now, event.key_epoch)  # fmt: skip
    forged = replace(codec.decode_as(value, SignedEnvelope), signature=b"\x00" * 64)
    return [
        (a.events_topic, key, codec.encode(forged)),
        (a.events_topic, key, value),  # the same signed event again: a replay
        (a.events_topic, key, ahead),
        (a.events_topic, key, far),
        (a.consent_topic, key, _factory(a).envelope(consent, codec)),
        (a.events_topic, key, codec.encode(bloated)),
        (a.events_topic, b"junk", b"\x00\x01\x02 not avro at all"),
        (a.events_topic, key, other),
        (a.events_topic, key, value[:40]),
    ]


def _wait(bootstrap: str, topic: str, count: int, timeout: float = 180) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while True:
        values = [v for _, v in read_topic(bootstrap, topic)]
        if len(values) >= count or time.monotonic() > deadline:
            return values
        time.sleep(1)


def test_every_poison_kind_is_rejected_and_every_good_move_still_notified(
    council_factory, kafka_bootstrap, federation, topic_factory, tmp_path
):
    prefix = topic_factory("fed")
    a, b = council_factory(A, prefix=prefix), council_factory(B, prefix=prefix)
    group = topic_factory("broker")
    worker = start_worker(kafka_bootstrap, federation, group=group, prefix=prefix,
                          data_dir=tmp_path / "broker", log=tmp_path / "worker.log",
                          options=["--checkpoint-interval", "3"])  # fmt: skip
    codec = Codec()
    try:
        _drop(a.inbox, "first.csv", [_row("first", A, "CT_CLOSE", DAY0)])
        run_connector(a, "--once")
        _drop(b.inbox, "first.csv", [_row("first", B, "MOVE", DAY0 + timedelta(days=3))])
        run_connector(b, "--once")
        settled(kafka_bootstrap, group, prefix)
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        good = read_topic(kafka_bootstrap, a.events_topic)[0]
        for topic, key, value in _poison(a, b, codec, good):
            producer.send(topic, key=key, value=value)
        producer.flush()
        producer.close()
        _drop(a.inbox, "second.csv", [_row("second", A, "CT_CLOSE", DAY0)])
        run_connector(a, "--once")
        _drop(b.inbox, "second.csv", [_row("second", B, "MOVE", DAY0 + timedelta(days=3))])
        run_connector(b, "--once")
        settled(kafka_bootstrap, group, prefix)
        rejected = _wait(kafka_bootstrap, f"{prefix}.rejected", len(EXPECTED))
        # The worker lives through a checkpoint tick after the last decision.
        until(lambda: audit_sealed(kafka_bootstrap, prefix),
              "a checkpoint after every chain's last decision", timeout=60)  # fmt: skip
        assert worker.poll() is None, "the worker is still running"
    finally:
        stop_worker(worker)
    log = (tmp_path / "worker.log").read_text()
    assert "Traceback" not in log and "crashed" not in log.lower(), log[-3000:]

    reasons = sorted(codec.decode_as(v, RejectedRecord).reason for v in rejected)
    assert reasons == sorted(EXPECTED), log[-3000:]
    for value in rejected:
        record = codec.decode_as(value, RejectedRecord)
        assert record.detail == "" and record.topic.startswith(prefix)
    for given, family, dob in PEOPLE.values():
        assert not any(given.encode() in v or family.encode() in v or dob.encode() in v
                       for v in rejected)  # fmt: skip

    key = load_linkage_keys(a.linkage_keys)[-1]
    person_of_ref = {opaque_reference(key, c, "synthetic", f"{p}@{c}"): p
                     for p in PEOPLE for c in (A, B)}  # fmt: skip
    person_of_event = {}
    for topic in (a.events_topic, b.events_topic):
        for _, value in read_topic(kafka_bootstrap, topic):
            try:
                event = body_of(codec, value, CitizenEvent)
            except Exception:  # noqa: BLE001 - the poison on the topic
                continue
            if event.source_ref in person_of_ref:
                person_of_event[event.event_id] = person_of_ref[event.source_ref]
    notifications = [n for n in read_notifications(kafka_bootstrap, prefix, federation.load())
                     if n.agreement_id == AGREEMENT]  # fmt: skip
    assert {person_of_event[e.event_id] for n in notifications for e in n.events} == set(PEOPLE)
    audit = [codec.decode_as(v, AuditRecord)
             for _, v in read_topic(kafka_bootstrap, f"{prefix}.audit")]  # fmt: skip
    allowed = {person_of_event[e] for r in audit if r.kind is AuditKind.DECISION
               and r.outcome is not None and r.outcome.value == "allowed"
               for e in r.event_ids}  # fmt: skip
    assert allowed == set(PEOPLE)
