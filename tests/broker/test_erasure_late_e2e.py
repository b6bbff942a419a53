"""An event published before an erasure but read after it, end to end through real Kafka.

Council B's event about a resident is published, but its topic is read after
council A's erasure request for the resident (here: the event is sent to B's
topic only once the broker has applied the erasure). The resident then grants
consent again and a new event of theirs arrives at A. The late event is part of
what the erasure removed: it must not be kept, matched or disclosed. A control
resident, with no erasure, is notified.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer

from connectors import EventFactory, SourceRow, Tokeniser, load_linkage_keys, load_mapping
from consent import seal_envelope
from schemas import AuditKind, AuditRecord, CitizenEvent, Codec, SignatureDomain
from tests.broker.test_decisions_e2e import _consent, _day, _drop, _row, add_consent_source
from tests.broker.workers import settled, start_worker, stop_worker
from tests.connectors.conftest import COUNCILS, read_topic, run_connector
from tests.wire import read_notifications

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

A, B, _ = COUNCILS
ERASED, CONTROL = "erased", "allowed"  # residents of tests.broker.test_decisions_e2e.PEOPLE


def _signed_earlier(setup, row: dict[str, str], published_at: datetime) -> CitizenEvent:  # type: ignore[no-untyped-def]
    """B's connector's event as it would have been published at ``published_at``."""
    keys = load_linkage_keys(setup.linkage_keys)
    council = setup.council
    factory = EventFactory(council, setup.federation.signing_key(council),
                           setup.federation.load(), Tokeniser(keys), keys[-1])  # fmt: skip
    return factory.event(SourceRow("late.csv", 2, row), load_mapping(setup.synth.mapping),
                         now=published_at)  # fmt: skip


def test_an_event_published_before_an_erasure_and_read_after_it_is_never_disclosed(
    council_factory, kafka_bootstrap, federation, topic_factory, tmp_path: Path
):
    prefix = topic_factory("fed")
    a = council_factory(A, prefix=prefix)
    consent_inbox = add_consent_source(a, tmp_path)
    b = council_factory(B, prefix=prefix)
    late = _signed_earlier(b, _row(ERASED, B, "MOVE", _day(3)), datetime.now(UTC))
    today = datetime.now(UTC).date().isoformat()
    group = topic_factory("broker")
    worker = start_worker(kafka_bootstrap, federation, group=group, prefix=prefix,
                          data_dir=tmp_path / "broker", log=tmp_path / "worker.log")  # fmt: skip
    codec = Codec()
    try:
        # 1. The resident's erasure request at A, published after B's event was.
        _drop(consent_inbox, "erasure.csv", [_consent(ERASED, "*", "erasure-requested", today)])
        run_connector(a, "--once")
        settled(kafka_bootstrap, group, prefix)
        # 2. B's event, read only now (its topic lagged behind A's).
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        producer.send(b.events_topic, key=late.tokens[0].key().encode(),
                      value=seal_envelope(SignatureDomain.EVENT, late,
                                          b.federation.signing_key(B), B, codec=codec))  # fmt: skip
        producer.flush()
        producer.close()
        settled(kafka_bootstrap, group, prefix)
        # 3. The resident grants again; then new events at A (and the control's at both).
        _drop(consent_inbox, "grant.csv", [_consent(ERASED, "*", "granted", today)])
        run_connector(a, "--once")
        settled(kafka_bootstrap, group, prefix)
        _drop(b.inbox, "events.csv", [_row(CONTROL, B, "MOVE", _day(3))])
        run_connector(b, "--once")
        settled(kafka_bootstrap, group, prefix)
        _drop(a.inbox, "events.csv", [_row(ERASED, A, "CT_CLOSE", _day(0)),
                                      _row(CONTROL, A, "CT_CLOSE", _day(0))])  # fmt: skip
        run_connector(a, "--once")
        settled(kafka_bootstrap, group, prefix)
    finally:
        stop_worker(worker)
    log = (tmp_path / "worker.log").read_text()[-3000:]

    assert read_topic(kafka_bootstrap, f"{prefix}.rejected") == [], log
    notified = read_notifications(kafka_bootstrap, prefix, federation.load())
    disclosed = {e.event_id for n in notified for e in n.events}
    assert disclosed, f"the control resident was not notified: {log}"
    assert late.event_id not in disclosed, "the erased resident's late event was disclosed"
    audit = [codec.decode_as(v, AuditRecord) for _, v in read_topic(kafka_bootstrap,
                                                                    f"{prefix}.audit")]  # fmt: skip
    decided = {e for r in audit if r.kind is AuditKind.DECISION for e in r.event_ids}
    assert late.event_id not in decided, "the late event was matched after the erasure"
