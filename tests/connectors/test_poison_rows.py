"""Poison rows cost themselves only: refused by reason, quarantined without values, counted.

Issue 11 items 1, 3 and 7 and issue 12 item 3, at the connector's reading step
(no Kafka here; ``test_poison_e2e`` sends the same file through the real one).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from connectors import (
    ConfigInvalid,
    ConnectorMetrics,
    Outbox,
    SourceConfig,
    TimeBounds,
    load_config,
    open_connector,
)
from connectors._folder_source import FolderSource
from schemas import CitizenEvent, Codec, ConsentRecord
from tests.connectors.conftest import offline_config
from tests.connectors.poison import poison_consent, poison_events, write_mappings
from tests.wire import body_of


def _connector(tmp_path: Path, federation, linkage_keys, **overrides):
    events_map, consent_map = write_mappings(tmp_path)
    (tmp_path / "events").mkdir()
    (tmp_path / "consent").mkdir()
    sources = (
        SourceConfig("housing", "jsonl", events_map, path=tmp_path / "events"),
        SourceConfig("consent", "csv", consent_map, path=tmp_path / "consent"),
    )
    config = offline_config(
        federation, linkage_keys, tmp_path / "outbox.sqlite", sources, **overrides
    )
    metrics = ConnectorMetrics()
    return open_connector(config, metrics=metrics), metrics


def _quarantine(outbox: Outbox, source: str) -> set[tuple[int, str, str]]:
    return {(q.row, q.field, q.reason) for q in outbox.quarantined() if q.source == source}


def _records(outbox: Outbox) -> list[CitizenEvent | ConsentRecord]:
    """The bodies of the signed envelopes waiting in the outbox."""
    codec = Codec()
    kinds = {True: ConsentRecord, False: CitizenEvent}
    return [body_of(codec, e.value, kinds[".consent." in e.topic]) for e in outbox.pending(1000)]


def test_each_poison_row_is_refused_by_reason_and_the_good_rows_go_on(
    tmp_path, federation, linkage_keys, caplog
):
    caplog.set_level(logging.DEBUG)
    connector, metrics = _connector(tmp_path, federation, linkage_keys)
    events, consent = poison_events(), poison_consent()
    (tmp_path / "events" / "extract.jsonl").write_text("\n".join(events.lines) + "\n")
    (tmp_path / "consent" / "choices.csv").write_text("\n".join(consent.lines) + "\n")
    try:
        report = connector.ingest()
        outbox = connector.outbox
        assert _quarantine(outbox, "housing") == events.quarantined
        assert _quarantine(outbox, "consent") == consent.quarantined
        assert {(d.row, d.field, d.reason) for d in outbox.dropped()} == events.dropped
        records = _records(outbox)
        refs = {r.source_ref for r in records if isinstance(r, CitizenEvent)}
        assert len(refs) == len(events.good_refs)
        assert sum(isinstance(r, ConsentRecord) for r in records) == len(consent.good_refs)
        assert report.quarantined == len(events.quarantined) + len(consent.quarantined)
        assert report.dropped == len(events.dropped)
        # The row whose NHS number was dropped is published without an NHS token.
        assert len([r for r in records if isinstance(r, CitizenEvent)]) == len(events.good_refs)
        scrape = generate_latest(metrics.registry).decode()
        for _row, field, reason in events.quarantined | consent.quarantined:
            assert f'field="{field}",reason="{reason}"' in scrape
        assert (
            'fedbroker_connector_fields_dropped_total{field="nhs_number",'
            'reason="bad-check-digit",source="housing"} 1.0'
        ) in scrape
        stored = _dump_quarantine(connector.config.outbox)
    finally:
        connector.close()
    for secret in events.secrets + consent.secrets:
        assert secret not in stored
        assert secret not in caplog.text
        assert secret not in scrape
    assert (tmp_path / "events" / "done" / "extract.jsonl").exists()


def _dump_quarantine(path: Path) -> str:
    """Everything the quarantine tables hold, as text."""
    db = sqlite3.connect(path)
    try:
        rows = [
            *db.execute("SELECT * FROM quarantine"),
            *db.execute("SELECT * FROM dropped_fields"),
        ]
    finally:
        db.close()
    return repr(rows)


def test_an_unexpected_error_in_one_row_is_bounded_then_quarantined(
    tmp_path, federation, linkage_keys, caplog
):
    """A bug that raises (not an InvalidIdentifier) costs its row, not the file."""
    connector, metrics = _connector(tmp_path, federation, linkage_keys)
    events = poison_events()
    (tmp_path / "events" / "extract.jsonl").write_text("\n".join(events.lines[:3]) + "\n")
    real = connector.factory

    class Exploding:
        tokeniser = real.tokeniser

        def event(self, row, mapping, *, now, **options):
            if row.row == 2:
                raise ZeroDivisionError(f"secret {row.values.get('forename')}")
            return real.event(row, mapping, now=now, **options)

        def envelope(self, record, codec):
            return real.envelope(record, codec)

    connector.factory = Exploding()  # type: ignore[assignment]
    try:
        connector.ingest()
        assert _quarantine(connector.outbox, "housing") == {
            (2, "row", "unexpected-ZeroDivisionError")
        }
        assert connector.outbox.depth() == 2
    finally:
        connector.close()
    # Rows are built in worker processes: each attempt is known by its log line.
    attempts = [r for r in caplog.records if "unexpected ZeroDivisionError" in r.getMessage()]
    assert len(attempts) == 2, "retried a bounded number of times"
    assert "secret" not in caplog.text


def test_future_dated_consent_is_refused_within_the_configured_skew(
    tmp_path, federation, linkage_keys
):
    now = datetime.now(UTC)
    connector, _ = _connector(
        tmp_path,
        federation,
        linkage_keys,
        time_bounds=TimeBounds(
            max_skew=timedelta(hours=2), recorded_at_floor=datetime(2000, 1, 1, tzinfo=UTC)
        ),
    )
    connector.clock = lambda: now
    soon = (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    later = (now + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S")
    (tmp_path / "consent" / "c.csv").write_text(
        "ref,first,last,dob,nhs,agreement,choice,at\n"
        f"a,Ann,Lee,1970-01-02,,*,O,{soon}\n"
        f"b,Ann,Lee,1970-01-02,,*,Y,{later}\n"
        "c,Ann,Lee,1970-01-02,,*,N,2001-01-01T00:00:00\n"
    )
    try:
        connector.ingest()
        assert _quarantine(connector.outbox, "consent") == {
            (2, "recorded_at", "recorded-in-future")
        }
        assert connector.outbox.depth() == 2
    finally:
        connector.close()


def test_the_time_bounds_are_read_from_the_config_file(tmp_path, linkage_keys):
    config = tmp_path / "connector.yaml"
    config.write_text(
        "council: E08000001\ndirectory: d\ntrust_anchor: t\nsigning_key: k\n"
        f"linkage_keys: {linkage_keys}\noutbox: o\nkafka: {{bootstrap: x:1}}\n"
        "max_clock_skew_s: 60\noccurred_at_floor: 1950-01-01\n"
        "recorded_at_floor: '2024-04-01T00:00:00+00:00'\nmax_record_bytes: 5000\n"
        "sources: [{name: s, kind: csv, path: in, mapping: m.yaml}]\n"
    )
    loaded = load_config(config)
    assert loaded.time_bounds == TimeBounds(
        max_skew=timedelta(seconds=60),
        occurred_at_floor=datetime(1950, 1, 1, tzinfo=UTC),
        recorded_at_floor=datetime(2024, 4, 1, tzinfo=UTC),
    )
    assert loaded.max_record_bytes == 5000
    config.write_text(config.read_text().replace("max_clock_skew_s: 60", "max_clock_skew_s: -1"))
    with pytest.raises(ConfigInvalid, match="max_clock_skew_s"):
        load_config(config)


def test_a_record_over_the_size_cap_is_refused_at_the_row(tmp_path, federation, linkage_keys):
    connector, _ = _connector(tmp_path, federation, linkage_keys, max_record_bytes=600)
    events = poison_events()
    (tmp_path / "events" / "extract.jsonl").write_text(events.lines[0] + "\n")
    try:
        connector.ingest()
        assert _quarantine(connector.outbox, "housing") == {(1, "record", "record-too-large")}
        assert connector.outbox.depth() == 0
    finally:
        connector.close()


def test_an_unparseable_csv_record_costs_that_record_only(tmp_path):
    """A cell over the csv module's limit used to raise csv.Error and fail the file."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["ref", "name"])
    writer.writerows([["1", "Ann"], ["2", "x" * 200_000], ["3", "Bo"]])
    path = tmp_path / "f.csv"
    path.write_text(text.getvalue())
    rows = list(FolderSource("s", tmp_path, "csv").rows(path, frozenset({"ref", "name"})))
    assert [(r.row, r.values.get("ref"), r.malformed) for r in rows] == [
        (1, "1", None),
        (2, None, "unparseable"),
        (3, "3", None),
    ]


def test_lord_as_a_surname_is_published_not_quarantined(tmp_path, federation, linkage_keys):
    """Issue 11 item 7: 'Lord' was stripped as a title, leaving no surname; row quarantined."""
    connector, _ = _connector(tmp_path, federation, linkage_keys)
    (tmp_path / "events" / "x.jsonl").write_text(
        '{"ref": "r1", "forename": "", "surname": "Lord", "dob": "02/01/1970", '
        '"event": "MOVE", "when": "2026-01-01T00:00:00"}\n'
    )
    try:
        connector.ingest()
        assert connector.outbox.quarantined() == []
        assert connector.outbox.depth() == 1
    finally:
        connector.close()


def test_an_unexpected_error_while_encoding_costs_the_row_too(tmp_path, federation, linkage_keys):
    connector, _ = _connector(tmp_path, federation, linkage_keys)
    good = poison_events().lines[0:6:2]  # three good rows
    (tmp_path / "events" / "extract.jsonl").write_text("\n".join(good) + "\n")
    real = connector.codec
    calls = []

    class ExplodingCodec:
        def encode_body(self, record):
            calls.append(record.event_id)
            if len(set(calls)) == 2:  # the second row, every time it is tried
                raise OverflowError("as an encoder might")
            return real.encode_body(record)

        def __getattr__(self, name):
            return getattr(real, name)

    connector.codec = ExplodingCodec()  # type: ignore[assignment]
    try:
        connector.ingest()
        assert _quarantine(connector.outbox, "housing") == {(2, "row", "unexpected-OverflowError")}
        assert connector.outbox.depth() == 2
    finally:
        connector.close()


def test_a_bug_one_row_trips_in_the_batch_encoding_costs_that_row_only(
    tmp_path, federation, linkage_keys, monkeypatch, caplog
):
    """Rows are Bloom-encoded in one batch; a bug there (not an InvalidIdentifier) must
    not lose the batch: every row is encoded again alone, and only the row that trips
    the bug is quarantined, by type, without its values."""
    import connectors._rows as rows_module

    connector, _ = _connector(tmp_path, federation, linkage_keys)
    events = poison_events()
    (tmp_path / "events" / "extract.jsonl").write_text("\n".join(events.lines) + "\n")
    line = next(i for i, text in enumerate(events.lines) if '"good-3"' in text)
    trap, row = json.loads(events.lines[line])["forename"], line + 1
    real = rows_module.normalise_fields

    def buggy(raw, **options):
        if raw.get("given_name") == trap:
            raise ZeroDivisionError(f"secret {trap}")
        return real(raw, **options)

    monkeypatch.setattr(rows_module, "normalise_fields", buggy)
    try:
        connector.ingest()
        outbox = connector.outbox
        quarantined = _quarantine(outbox, "housing")
        assert quarantined == events.quarantined | {(row, "row", "unexpected-ZeroDivisionError")}
        refs = {r.source_ref for r in _records(outbox) if isinstance(r, CitizenEvent)}
        assert len(refs) == len(events.good_refs) - 1
    finally:
        connector.close()
    assert "batch encoding of" in caplog.text
    assert trap not in caplog.text


def test_batch_encoding_gives_each_row_what_encoding_it_alone_gives(
    tmp_path, federation, linkage_keys
):
    """Same tokens, same Bloom encoding, same refusal (field and code) per row."""
    from connectors import InvalidIdentifier, encode_row, encode_rows

    connector, _ = _connector(tmp_path, federation, linkage_keys)
    events = poison_events()
    path = tmp_path / "events" / "extract.jsonl"
    path.write_text("\n".join(events.lines) + "\n")
    try:
        mapping = connector.mappings["housing"]
        tokeniser = connector.factory.tokeniser
        rows = list(FolderSource("housing", path.parent, "jsonl").rows(path, mapping.columns))
        batch = encode_rows(rows, mapping, tokeniser)
        assert len(batch) == len(rows)
        refused = 0
        for row, got in zip(rows, batch, strict=True):
            try:
                alone = encode_row(row, mapping, tokeniser)
            except InvalidIdentifier as exc:
                assert isinstance(got, InvalidIdentifier)
                assert (got.field, got.code) == (exc.field, exc.code)
                refused += 1
                continue
            assert got == alone
        assert 0 < refused < len(rows)
    finally:
        connector.close()
