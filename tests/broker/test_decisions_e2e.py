"""Every kind of refusal, end to end: three councils' connectors, one broker worker, real Kafka.

Each synthetic resident is built to meet one rule of DESIGN section 6 (no
agreement, an objection, consent withdrawn before the events, events outside the
agreement's validity, a payload wider than the agreement, an erasure request),
and one ordinary move is allowed as the control. The test reads the audit topic
and checks that each resident's decisions carry exactly the expected reason and
that only the control was notified.
"""

from __future__ import annotations

import csv
import os
import urllib.request
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaProducer

from connectors import EventFactory, SourceRow, Tokeniser, load_linkage_keys, load_mapping
from connectors._tokens import opaque_reference
from consent import seal_envelope, verify_audit
from fedbroker import read_to_end
from schemas import (
    AuditKind,
    AuditRecord,
    CitizenEvent,
    Codec,
    SignatureDomain,
)
from tests.broker.workers import audit_sealed, settled, start_worker, stop_worker, until
from tests.connectors.conftest import COUNCILS, read_topic, run_connector
from tests.ports import SERVERS
from tests.wire import body_of, is_row, live_rows, read_notifications, table_key

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

A, B, C = COUNCILS
METRICS_PORT = SERVERS["decisions-metrics"][0]
DAY0 = date.today() - timedelta(days=30)  # inside every agreement's retention
BEFORE_IN_FORCE = "2026-03-10"  # the example agreements apply from 2026-04-01


def _day(offset: int) -> str:
    return (DAY0 + timedelta(days=offset)).isoformat()


def _day_before(offset: int) -> str:
    return (date.fromisoformat(BEFORE_IN_FORCE) + timedelta(days=offset)).isoformat()


SYSTEM = "synthetic"
PEOPLE = {
    "no-agreement": ("Dora", "Quill", "03/03/1971"),
    "objected": ("Ezra", "Pennyworth", "11/07/1988"),
    "withdrawn": ("Farah", "Okonkwo", "29/01/1993"),
    "not-in-force": ("Gideon", "Marsh", "05/10/1966"),
    "field": ("Hana", "Takahashi", "17/12/1979"),
    "erased": ("Ivor", "Blackwood", "08/04/1958"),
    "allowed": ("Jude", "Fairweather", "21/06/1990"),
}
CONSENT_MAPPING = {
    "system": "consent",
    "record": "consent",
    "identity": {"given_name": "forename", "family_name": "surname", "date_of_birth": "dob"},
    "date_of_birth_format": "%d/%m/%Y",
    "reference": "ref",
    "scope": {"column": "scope"},
    "state": {"column": "state"},
    "occurred_at": {"column": "recorded", "format": "%Y-%m-%d"},
}


def _row(person: str, council: str, event: str, when: str) -> dict[str, str]:
    given, family, dob = PEOPLE[person]
    return {"ref": f"{person}@{council}", "forename": given, "surname": family, "dob": dob,
            "postcode": "M1 1AE", "address_1": "1 Piccadilly", "uprn": "", "nhs_no": "",
            "ni_number": "", "event": event, "event_date": when}  # fmt: skip


def _consent(person: str, scope: str, state: str, recorded: str) -> dict[str, str]:
    given, family, dob = PEOPLE[person]
    return {"ref": f"{person}-consent", "forename": given, "surname": family, "dob": dob,
            "scope": scope, "state": state, "recorded": recorded}  # fmt: skip


def _drop(folder: Path, name: str, rows: list[dict[str, str]]) -> None:
    partial = folder / f".{name}"
    with partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, folder / name)


def _check_metrics(text: str) -> None:
    """The operator's view of the same run: labelled counts, and nothing personal."""
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
               for line in text.splitlines() if line and not line.startswith("#")}  # fmt: skip
    assert samples[f'fedbroker_broker_events_total{{event_type="rent-arrears",source="{A}"}}'] == 3
    assert samples['fedbroker_broker_decisions_total{agreement="none",outcome="denied"}'] >= 1
    assert samples['fedbroker_broker_decisions_total{agreement="gm-cross-boundary-move",'
                   'outcome="allowed"}'] >= 1  # fmt: skip
    assert samples['fedbroker_broker_matches_total{method="exact"}'] >= 7
    assert samples['fedbroker_broker_processing_seconds_count{stage="match"}'] > 0
    assert samples["fedbroker_broker_dice_threshold"] == 0.8
    assert any(k.startswith("fedbroker_broker_consumer_lag{") for k in samples)
    assert not any(k.startswith("fedbroker_broker_rejected_total{") for k in samples)
    for given, family, dob in PEOPLE.values():
        assert given not in text and family not in text and dob not in text
    assert "@" not in text, "no source reference in a label"


def _widened(setup, row: dict[str, str]) -> CitizenEvent:  # type: ignore[no-untyped-def]
    """The event a faulty connector would publish: sealed fields beyond the agreement."""
    keys = load_linkage_keys(setup.linkage_keys)
    council = setup.council
    factory = EventFactory(council, setup.federation.signing_key(council),
                           setup.federation.load(), Tokeniser(keys), keys[-1])  # fmt: skip
    event = factory.event(SourceRow("faulty.csv", 2, row), load_mapping(setup.synth.mapping),
                          now=datetime.now(UTC))  # fmt: skip
    sealed = tuple(replace(p, fields=(*p.fields, "nhs_number")) for p in event.sealed)
    return replace(event, sealed=sealed)


def add_consent_source(setup: Any, folder: Path) -> Path:
    """Give a council's connector a CSV consent source; returns its inbox."""
    inbox = folder / "consent-inbox"
    inbox.mkdir()
    (folder / "consent.yaml").write_text(yaml.safe_dump(CONSENT_MAPPING))
    document = yaml.safe_load(setup.config.read_text())
    document["sources"].append({"name": "consent", "kind": "csv", "path": str(inbox),
                                "mapping": str(folder / "consent.yaml")})  # fmt: skip
    setup.config.write_text(yaml.safe_dump(document))
    return inbox


def test_each_refusal_is_audited_with_its_reason_and_only_the_control_is_notified(
    council_factory, kafka_bootstrap, federation, topic_factory, tmp_path
):
    prefix = topic_factory("fed")
    a = council_factory(A, prefix=prefix)
    consent_inbox = add_consent_source(a, tmp_path)
    b, c = council_factory(B, prefix=prefix), council_factory(C, prefix=prefix)

    group = topic_factory("broker")
    worker = start_worker(
        kafka_bootstrap,
        federation,
        group=group,
        prefix=prefix,
        data_dir=tmp_path / "broker",
        log=tmp_path / "worker.log",
        options=["--checkpoint-interval", "3", "--metrics-port", str(METRICS_PORT)],
    )
    try:
        # 1. Residents' choices, recorded before any of their events.
        _drop(consent_inbox, "choices.csv", [
            _consent("objected", "gm-multiple-disadvantage", "objected", _day(-31)),
            _consent("withdrawn", "purpose:supporting-families-early-help", "withdrawn",
                     _day(-31)),
        ])  # fmt: skip
        run_connector(a, "--once")
        settled(kafka_bootstrap, group, prefix, log=tmp_path / "worker.log")

        # 2. The first council's events.
        _drop(a.inbox, "events.csv", [
            _row("no-agreement", A, "MOVE", _day(0)),
            _row("objected", A, "RENT_ARR", _day(0)),
            _row("withdrawn", A, "RENT_ARR", _day(0)),
            _row("not-in-force", A, "RENT_ARR", BEFORE_IN_FORCE),
            _row("field", A, "CT_CLOSE", _day(0)),
            _row("erased", A, "CT_CLOSE", _day(0)),
            _row("allowed", A, "CT_CLOSE", _day(0)),
        ])  # fmt: skip
        run_connector(a, "--once")
        settled(kafka_bootstrap, group, prefix, log=tmp_path / "worker.log")

        # 3. An erasure request at the first council forgets what it held.
        _drop(consent_inbox, "erasure.csv", [_consent("erased", "*", "erasure-requested",
                                                      _day(1))])  # fmt: skip
        run_connector(a, "--once")
        settled(kafka_bootstrap, group, prefix, log=tmp_path / "worker.log")

        # 4. The other councils' events, and one faulty connector's over-wide payload.
        _drop(b.inbox, "events.csv", [
            _row("no-agreement", B, "CTR", _day(2)),
            _row("objected", B, "CT_ARR", _day(4)),
            _row("withdrawn", B, "CT_ARR", _day(4)),
            _row("not-in-force", B, "CT_ARR", _day_before(10)),
            _row("erased", B, "MOVE", _day(3)),
            _row("allowed", B, "MOVE", _day(3)),
        ])  # fmt: skip
        _drop(c.inbox, "events.csv", [
            _row("objected", C, "PA", _day(9)),
            _row("withdrawn", C, "PA", _day(9)),
            _row("not-in-force", C, "PA", _day_before(15)),
            _row("erased", C, "CT_OPEN", _day(4)),
        ])  # fmt: skip
        run_connector(b, "--once")
        run_connector(c, "--once")
        faulty = _widened(b, _row("field", B, "MOVE", _day(3)))
        codec = Codec()
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        producer.send(b.events_topic, key=faulty.tokens[0].key().encode(),
                      value=seal_envelope(SignatureDomain.EVENT, faulty,
                                          b.federation.signing_key(B), B, codec=codec))  # fmt: skip
        producer.flush()
        producer.close()
        settled(kafka_bootstrap, group, prefix, log=tmp_path / "worker.log")
        # The worker lives through a checkpoint tick after the last decision.
        until(lambda: audit_sealed(kafka_bootstrap, prefix),
              "a checkpoint after every chain's last decision", timeout=60)  # fmt: skip
        with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics") as response:
            metrics = response.read().decode()
    finally:
        stop_worker(worker)
    log = (tmp_path / "worker.log").read_text()[-3000:]

    key = load_linkage_keys(a.linkage_keys)[-1]
    person_of_ref = {opaque_reference(key, council, SYSTEM, f"{person}@{council}"): person
                     for person in PEOPLE for council in COUNCILS}  # fmt: skip
    person_of_event = {}
    for topic in (a.events_topic, b.events_topic, c.events_topic):
        for _, value in read_topic(kafka_bootstrap, topic):
            event = body_of(codec, value, CitizenEvent)
            person_of_event[event.event_id] = person_of_ref[event.source_ref]
    assert read_topic(kafka_bootstrap, f"{prefix}.rejected") == [], log

    audit = [codec.decode_as(v, AuditRecord) for _, v in read_topic(kafka_bootstrap,
                                                                    f"{prefix}.audit")]  # fmt: skip
    reasons: dict[str, set[str]] = defaultdict(set)
    decided: set[str] = set()
    for record in audit:
        if record.kind is AuditKind.DECISION:
            people = {person_of_event[e] for e in record.event_ids}
            assert len(people) == 1, f"one decision mixed residents: {people}"
            reasons[people.pop()].update(record.reasons)
            decided.update(record.event_ids)
    assert dict(reasons) == {
        "no-agreement": {"no-agreement"},
        "objected": {"objected"},
        "withdrawn": {"consent-withdrawn"},
        "not-in-force": {"agreement-not-in-force"},
        "field": {"field-not-allowed"},
        "erased": {"erasure-requested"},
        "allowed": {"allowed"},
    }, log
    report = verify_audit(audit, federation.load().member("broker").signing_key)
    assert report.ok, report.problems
    assert report.chains and all(c.unanchored == 0 for c in report.chains.values()), (
        "every decision is covered by a signed checkpoint, even once the stream is quiet"
    )
    _check_metrics(metrics)
    erasures = [r for r in audit if r.kind is AuditKind.ERASURE]
    assert len(erasures) >= 1 and all(r.subject_tokens for r in erasures)
    erased_at_a = [e for e, p in person_of_event.items() if p == "erased" and e in decided]
    assert len(erased_at_a) == 2, "the erased resident's first event was forgotten"
    # Its sighting (sealed payloads included) was stored, and every partition's copy
    # is gone from the token-state changelog: what compaction keeps holds none of it.
    before = {
        body_of(codec, v, CitizenEvent).event_id
        for _, v in read_topic(kafka_bootstrap, a.events_topic)
    } & {e for e, p in person_of_event.items() if p == "erased"}
    sightings = [r for r in read_to_end(kafka_bootstrap, f"{group}-token-state-changelog")
                 if is_row(table_key(r.key))]  # fmt: skip
    assert len(before) == 1 and any(table_key(r.key).split("/")[0] in before for r in sightings)
    assert not [k for k, _ in live_rows(sightings) if k.split("/")[0] in before], log

    notified = read_notifications(kafka_bootstrap, prefix, federation.load())
    assert {person_of_event[e.event_id] for n in notified for e in n.events} == {"allowed"}
