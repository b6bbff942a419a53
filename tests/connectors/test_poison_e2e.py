"""Poison end to end through the real Kafka (issue 11, "done when").

One events file with one row of each poison kind between good rows, and one
consent file with future-dated and pre-federation choices between good ones:
every good row is published and verifies, each bad one is quarantined with its
reason and counted, and neither the quarantine, the logs, the metrics nor the
topics hold a clear value.
"""

from __future__ import annotations

import logging
import sqlite3

import pytest
from prometheus_client import generate_latest

from connectors import ConnectorMetrics, Outbox, load_config, load_linkage_keys, open_connector
from connectors import opaque_reference as opaque
from consent import open_envelope
from schemas import CitizenEvent, Codec, ConsentRecord, SignatureDomain
from tests.connectors.conftest import COUNCILS, read_topic
from tests.connectors.poison import BAD_NHS, poison_consent, poison_events, write_mappings

pytestmark = pytest.mark.kafka


def test_a_file_of_poison_rows_publishes_every_good_row(council_factory, kafka_bootstrap, caplog):
    caplog.set_level(logging.DEBUG)
    setup = council_factory(
        COUNCILS[1],
        sources=[
            {"name": "housing", "kind": "jsonl", "path": "events", "mapping": "events.yaml"},
            {"name": "consent", "kind": "csv", "path": "consent", "mapping": "consent.yaml"},
        ],
    )
    home = setup.config.parent
    write_mappings(home)
    events, consent = poison_events(), poison_consent()
    (home / "events").mkdir()
    (home / "consent").mkdir()
    (home / "events" / "extract.jsonl").write_text("\n".join(events.lines) + "\n")
    (home / "consent" / "choices.csv").write_text("\n".join(consent.lines) + "\n")

    metrics = ConnectorMetrics()
    connector = open_connector(load_config(setup.config), metrics=metrics)
    try:
        connector.run(once=True)
    finally:
        connector.close()

    directory = setup.federation.load()
    council_key = directory.member(setup.council).signing_key
    assert council_key is not None
    codec = Codec()
    raw_events = read_topic(kafka_bootstrap, setup.events_topic)

    def verified(value: bytes, domain: SignatureDomain) -> object:
        record, envelope = open_envelope(
            value,
            domain,
            lambda signer: council_key if signer == setup.council else None,
            codec=codec,
        )
        assert envelope.signer == setup.council
        return record

    published = [verified(v, SignatureDomain.EVENT) for _, v in raw_events]
    assert all(isinstance(e, CitizenEvent) for e in published)
    key = load_linkage_keys(setup.linkage_keys)[-1]
    by_ref = {opaque(key, setup.council, "revenues", ref): ref for ref in events.good_refs}
    assert sorted(by_ref.get(e.source_ref, "?") for e in published) == sorted(events.good_refs)
    # good-1's NHS number was malformed: published on its other identifiers, no NHS token.
    nhs_domains = {by_ref[e.source_ref]: {t.domain for t in e.tokens} for e in published}
    assert "nhs" not in nhs_domains["good-1"]
    assert "nhs" in nhs_domains["good-0"] and "name+dob" in nhs_domains["good-1"]

    raw_consent = read_topic(kafka_bootstrap, setup.consent_topic)
    records = [verified(v, SignatureDomain.CONSENT) for _, v in raw_consent]
    assert all(isinstance(r, ConsentRecord) for r in records)
    assert sorted(r.state.value for r in records) == ["objected", "withdrawn", "withdrawn"]

    outbox = Outbox(setup.outbox)
    try:
        assert outbox.depth() == 0
        quarantined = {(q.source, q.row, q.field, q.reason) for q in outbox.quarantined()}
        dropped = {(d.row, d.field, d.reason) for d in outbox.dropped()}
    finally:
        outbox.close()
    assert quarantined == {("housing", *q) for q in events.quarantined} | {
        ("consent", *q) for q in consent.quarantined
    }
    assert dropped == events.dropped

    scrape = generate_latest(metrics.registry).decode()
    expected_counts: dict[tuple[str, str, str], int] = {}
    for source, _row, field, reason in quarantined:
        expected_counts[(source, field, reason)] = (
            expected_counts.get((source, field, reason), 0) + 1
        )
    for (source, field, reason), count in expected_counts.items():
        line = (
            f'fedbroker_connector_rows_quarantined_total{{field="{field}",reason="{reason}",'
            f'source="{source}"}} {float(count)}'
        )
        assert line in scrape

    db = sqlite3.connect(setup.outbox)
    try:
        stored = repr([*db.execute("SELECT * FROM quarantine"),
                       *db.execute("SELECT * FROM dropped_fields")])  # fmt: skip
    finally:
        db.close()
    on_the_wire = b"".join(v for _, v in raw_events + raw_consent)
    for secret in [*events.secrets, *consent.secrets, "Lord", "Okafor"]:
        assert secret not in stored
        assert secret not in scrape
        assert secret.encode() not in on_the_wire
    for secret in events.secrets + consent.secrets:
        assert secret not in caplog.text
    assert BAD_NHS not in caplog.text
