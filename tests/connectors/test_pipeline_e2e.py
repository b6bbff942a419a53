"""End to end through the real Kafka: CSV, JSON Lines and PostgreSQL sources.

Every published record's envelope is checked against the council's key in the
directory before its body is decoded, and its sealed payloads are opened by their
recipients under the labels they carry.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from connectors import ConnectorMetrics, Outbox, load_config, open_connector
from connectors._bloom import ENCODING
from consent import open_envelope, open_fields
from schemas import CitizenEvent, Codec, ConsentRecord, SignatureDomain
from tests.connectors.conftest import COUNCILS, REPO, CouncilSetup, read_topic, run_connector

pytestmark = pytest.mark.kafka


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _run_in_process(setup: CouncilSetup, metrics: ConnectorMetrics | None = None) -> int:
    connector = open_connector(load_config(setup.config), metrics=metrics)
    try:
        return connector.run(once=True)
    finally:
        connector.close()


def verify_events(setup: CouncilSetup, bootstrap: str, expected: int) -> list[CitizenEvent]:
    directory = setup.federation.load()
    council_key = directory.member(setup.council).signing_key
    assert council_key is not None
    codec = Codec()
    events: list[CitizenEvent] = []
    for _, value in read_topic(bootstrap, setup.events_topic):
        event, envelope = open_envelope(
            value,
            SignatureDomain.EVENT,
            lambda signer: council_key if signer == setup.council else None,
            codec=codec,
        )
        assert isinstance(event, CitizenEvent) and envelope.signer == setup.council
        events.append(event)
    assert len({e.event_id for e in events}) == expected
    assert {e.encoding for e in events} == {ENCODING}
    opened = 0
    for event in events:
        assert event.source_council == setup.council
        for sealed in event.sealed:
            fields = open_fields(
                setup.federation.sealing_key(sealed.recipient), sealed, event_id=event.event_id
            )
            agreement = directory.agreements[sealed.agreement_id]
            assert set(fields) <= agreement.allowed_fields(event.event_type)
            opened += 1
    assert opened > 0, "some events must carry payloads sealed to a recipient"
    return events


def test_csv_folder_to_verified_events(council_factory, kafka_bootstrap):
    setup = council_factory(COUNCILS[1])
    source = setup.synth.files[setup.council]
    shutil.copy(source, setup.inbox / "extract.csv")
    assert "published" in run_connector(setup, "--once")
    assert (setup.inbox / "done" / "extract.csv").exists()
    outbox = Outbox(setup.outbox)
    quarantined = len(outbox.quarantined())
    assert outbox.depth() == 0
    outbox.close()
    verify_events(setup, kafka_bootstrap, len(_rows(source)) - quarantined)


def test_jsonl_folder_with_a_bad_row_quarantines_it(council_factory, kafka_bootstrap, caplog):
    setup = council_factory(
        COUNCILS[2],
        sources=[{"name": "housing", "kind": "jsonl", "path": "inbox",
                  "mapping": "mapping.yaml"}],
    )  # fmt: skip
    shutil.copy(setup.synth.mapping, setup.config.parent / "mapping.yaml")
    rows = _rows(setup.synth.files[setup.council])
    bad = dict(rows[0], ref="bad-1", nhs_no="9434765918")  # check digit wrong
    lines = [json.dumps(r) for r in [*rows, bad]] + ["{not json"]
    (setup.inbox / "extract.jsonl").write_text("\n".join(lines) + "\n")
    _run_in_process(setup)
    outbox = Outbox(setup.outbox)
    reasons = {(q.row, q.field, q.reason) for q in outbox.quarantined()}
    dropped = {(d.row, d.field, d.reason) for d in outbox.dropped()}
    outbox.close()
    # A malformed NHS number costs that value, not the row (issue 12): kept, and reported.
    assert (len(rows) + 1, "nhs_number", "bad-check-digit") in dropped
    assert not any(row == len(rows) + 1 for row, _, _ in reasons)
    assert (len(rows) + 2, "row", "not-json") in reasons
    assert "9434765918" not in caplog.text
    verify_events(setup, kafka_bootstrap, len(rows) + 2 - len(reasons))


@pytest.mark.postgres
def test_postgres_table_read_incrementally(
    council_factory, kafka_bootstrap, postgres_dsn, topic_factory
):
    table = topic_factory("revenues").replace("-", "_")
    setup = council_factory(
        COUNCILS[0],
        sources=[{"name": "revenues", "kind": "postgres", "dsn": postgres_dsn, "table": table,
                  "high_water_column": "id", "mapping": "mapping.yaml"}],
    )  # fmt: skip
    shutil.copy(setup.synth.mapping, setup.config.parent / "mapping.yaml")
    rows = _rows(setup.synth.files[setup.council])
    columns = list(rows[0])
    insert = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
    )
    half = len(rows) // 2
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, "
                   + ", ".join(f"{c} text" for c in columns) + ")")  # fmt: skip
        with db.cursor() as cursor:
            cursor.executemany(insert, [tuple(r[c] for c in columns) for r in rows[:half]])
    _run_in_process(setup)
    with psycopg.connect(postgres_dsn, autocommit=True) as db, db.cursor() as cursor:
        cursor.executemany(insert, [tuple(r[c] for c in columns) for r in rows[half:]])
    _run_in_process(setup)
    outbox = Outbox(setup.outbox)
    assert outbox.high_water("revenues") == str(len(rows))
    quarantined = len(outbox.quarantined())
    outbox.close()
    events = verify_events(setup, kafka_bootstrap, len(rows) - quarantined)
    assert len(events) == len(rows) - quarantined, "a second run must not re-read old rows"


def test_synth_command_writes_councils_mapping_and_truth(tmp_path):
    result = subprocess.run(
        [str(REPO / ".venv/bin/fedbroker"), "synth", "--councils", "2", "--people", "30",
         "--out", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    truth = _rows(tmp_path / "truth.csv")
    files = sorted(p.name for p in tmp_path.glob("E08*.csv"))
    assert files == ["E08000001.csv", "E08000002.csv"]
    assert len(truth) == sum(len(_rows(tmp_path / f)) for f in files) >= 30
    assert "person_id" not in _rows(tmp_path / files[0])[0]


def test_consent_records_and_unreadable_files(council_factory, kafka_bootstrap):
    """Consent comes through the same sources; a file without its columns goes to failed/."""
    setup = council_factory(
        COUNCILS[0],
        sources=[{"name": "consent", "kind": "csv", "path": "inbox", "mapping": "consent.yaml"}],
    )
    (setup.config.parent / "consent.yaml").write_text(
        "system: consent-register\nrecord: consent\n"
        "identity: {given_name: first, family_name: last, date_of_birth: dob, nhs_number: nhs}\n"
        "reference: ref\noccurred_at: {column: at}\nscope: {column: agreement}\n"
        "state: {column: choice, values: {Y: granted, N: withdrawn, O: objected,\n"
        "  E: erasure-requested}}\n"
    )
    (setup.inbox / "choices.csv").write_text(
        "ref,first,last,dob,nhs,agreement,choice,at\n"
        "c1,Ann,Lee,1970-01-02,9434765919,gm-multiple-disadvantage,O,2026-09-01T10:00:00\n"
        "c2,Bo,Wu,1980-05-06,,*,E,2026-09-02T11:00:00\n"
    )
    (setup.inbox / "broken.csv").write_text("nothing,useful\n1,2\n")
    _run_in_process(setup)
    assert (setup.inbox / "failed" / "broken.csv").exists()
    assert (setup.inbox / "done" / "choices.csv").exists()
    codec = Codec()
    directory = setup.federation.load()
    messages = read_topic(kafka_bootstrap, setup.consent_topic)
    key = directory.member(setup.council).signing_key
    records = [
        open_envelope(v, SignatureDomain.CONSENT, lambda s: key, codec=codec)[0]
        for _, v in messages
    ]
    assert all(isinstance(r, ConsentRecord) for r in records)
    assert sorted(r.state.value for r in records) == ["erasure-requested", "objected"]
    for record in records:
        assert record.tokens and all(len(t.value) == 32 for t in record.tokens)
    outbox = Outbox(setup.outbox)
    assert [(q.location, q.field, q.reason) for q in outbox.quarantined()] == [
        ("broken.csv", "file", "source-unreadable")
    ]
    outbox.close()
