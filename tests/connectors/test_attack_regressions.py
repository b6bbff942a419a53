"""Issue 11: three breaks a hostile reviewer reproduced in the connector, now refused.

Each test is the reviewer's attack, run against the connector's own entry
points, and each failed on the code before its fix: a clear value signed into
the consent topic as its scope, a source key that became a reason code and a
metric label, and an older directory accepted after a newer one.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from connectors import ConnectorConfig, ConnectorMetrics, SourceConfig, load_config, open_connector
from consent import DirectoryRolledBack, generate_signing_key, public_key_b64, sign_directory
from schemas import ConsentRecord
from tests.connectors.conftest import COUNCILS
from tests.connectors.poison import write_mappings
from tests.connectors.test_poison_rows import _records

SECRET = "Alice Example 14/02/1984 9434765919"
CONSENT_HEADER = "ref,first,last,dob,nhs,agreement,choice,at"
PERSON = {"ref": "r1", "forename": "Ann", "surname": "Lee", "dob": "01/03/1971",
          "postcode": "M1 1AE", "nhs_no": "9434765919", "event": "MOVE",
          "when": "2026-11-20T10:00:00"}  # fmt: skip


def _connector(tmp_path: Path, federation, linkage_keys, **overrides):
    events_map, consent_map = write_mappings(tmp_path)
    (tmp_path / "events").mkdir(exist_ok=True)
    (tmp_path / "consent").mkdir(exist_ok=True)
    config = ConnectorConfig(
        council=COUNCILS[0],
        directory=overrides.pop("directory", federation.directory_path),
        trust_anchor=federation.trust_anchor,
        signing_key=federation.keys[COUNCILS[0]].signing.private,
        linkage_keys=linkage_keys,
        outbox=tmp_path / "outbox.sqlite",
        bootstrap="127.0.0.1:9",  # never reached: these tests only ingest
        sources=(
            SourceConfig("housing", "jsonl", events_map, path=tmp_path / "events"),
            SourceConfig("consent", "csv", consent_map, path=tmp_path / "consent"),
        ),
        **overrides,
    )
    metrics = ConnectorMetrics()
    return open_connector(config, metrics=metrics), metrics


def _everything_stored(path: Path) -> str:
    """Every row of every table of the outbox database, as text."""
    db = sqlite3.connect(path)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(repr(row) for t in tables for row in db.execute(f"SELECT * FROM {t}"))  # noqa: S608
    finally:
        db.close()


def _scope_row(ref: str, scope: str) -> str:
    return f"{ref},Ann,Lee,1970-01-02,9434765919,{scope},Y,2026-11-20T10:00:00"


def test_a_consent_scope_outside_the_directory_is_refused_not_published(
    tmp_path, federation, linkage_keys, caplog
):
    """The clerk's note in the agreement column was signed and published verbatim."""
    caplog.set_level(logging.DEBUG)
    directory_agreements = yaml.safe_load(federation.document_path.read_text())["agreements"]
    assert directory_agreements, "the dev federation must carry agreements for this test"
    connector, metrics = _connector(tmp_path, federation, linkage_keys)
    agreement = connector.factory.directory.agreements[
        sorted(connector.factory.directory.agreements)[0]
    ]
    lines = [
        CONSENT_HEADER,
        _scope_row("c-secret", SECRET),
        _scope_row("c-agreement", agreement.agreement_id),
        _scope_row("c-purpose", agreement.purpose_scope),
        _scope_row("c-all", "*"),
        _scope_row("c-unknown-purpose", "purpose:" + SECRET),
        _scope_row("c-near-miss", agreement.agreement_id + "-x"),
    ]
    (tmp_path / "consent" / "c.csv").write_text("\n".join(lines) + "\n")
    try:
        report = connector.ingest()
        quarantined = {(q.row, q.field, q.reason) for q in connector.outbox.quarantined()}
        records = [r for r in _records(connector.outbox) if isinstance(r, ConsentRecord)]
        pending = b"".join(e.value for e in connector.outbox.pending(1000))
        scrape = generate_latest(metrics.registry).decode()
    finally:
        connector.close()
    assert quarantined == {
        (1, "scope", "unknown-scope"),
        (5, "scope", "unknown-scope"),
        (6, "scope", "unknown-scope"),
    }
    assert report.quarantined == 3
    assert sorted(r.scope for r in records) == sorted(
        ["*", agreement.agreement_id, agreement.purpose_scope]
    )
    assert 'field="scope",reason="unknown-scope",source="consent"} 3.0' in scrape
    stored = _everything_stored(tmp_path / "outbox.sqlite")
    for secret in (SECRET, "Alice", "9434765919"[:6] + "5919"):
        assert secret.encode() not in pending
        assert secret not in stored
        assert secret not in scrape
        assert secret not in caplog.text


def test_a_malformed_key_in_a_jsonl_row_is_only_an_unmapped_column(
    tmp_path, federation, linkage_keys, caplog
):
    """A row's ``__malformed__`` key became the quarantine reason and a metric label."""
    caplog.set_level(logging.DEBUG)
    connector, metrics = _connector(tmp_path, federation, linkage_keys)
    rows = [
        dict(PERSON, ref="r-malf", __malformed__="Sentinelqxc 9434765919"),
        "not json at all",
        dict(PERSON, ref="r-ok"),
    ]
    text = "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows)
    (tmp_path / "events" / "x.jsonl").write_text(text + "\n")
    try:
        connector.ingest()
        quarantined = {(q.row, q.field, q.reason) for q in connector.outbox.quarantined()}
        published = {r.source_ref for r in _records(connector.outbox)}
        scrape = generate_latest(metrics.registry).decode()
    finally:
        connector.close()
    assert quarantined == {(2, "row", "not-json")}  # the reader's own marker still works
    assert len(published) == 2  # the row with the key is an ordinary, good row
    stored = _everything_stored(tmp_path / "outbox.sqlite")
    for hay in (stored, scrape, caplog.text):
        assert "Sentinelqx" not in hay


def test_a_malformed_column_in_a_csv_no_longer_quarantines_every_row(
    tmp_path, federation, linkage_keys
):
    connector, metrics = _connector(tmp_path, federation, linkage_keys)
    lines = [
        CONSENT_HEADER + ",__malformed__",
        _scope_row("c1", "*") + ",",
        _scope_row("c2", "*") + ",SENTINELQXP",
    ]
    (tmp_path / "consent" / "c.csv").write_text("\n".join(lines) + "\n")
    try:
        connector.ingest()
        assert connector.outbox.quarantined() == []
        assert len(_records(connector.outbox)) == 2
        assert "SENTINELQX" not in generate_latest(metrics.registry).decode()
    finally:
        connector.close()


def _resigned(federation, tmp_path: Path, *, serial_step: int) -> tuple[Path, Path]:
    """The federation's directory at its serial and at a later one that replaces the broker key."""
    doc = yaml.safe_load(federation.document_path.read_text())
    authority = federation.signing_key("gmca")
    older = tmp_path / "older.signed"
    older.write_bytes(sign_directory(yaml.safe_dump(doc, sort_keys=False), authority))
    replacement = generate_signing_key()
    for member in doc["members"]:
        if member["kind"] == "broker":
            member["signing_key"] = "ed25519:" + public_key_b64(replacement.public_key())
    doc["serial"] = int(doc.get("serial", 1)) + serial_step
    newer = tmp_path / "newer.signed"
    newer.write_bytes(sign_directory(yaml.safe_dump(doc, sort_keys=False), authority))
    return older, newer


def test_an_older_directory_after_a_newer_one_is_refused_at_start(
    tmp_path, federation, linkage_keys
):
    """The reviewer's a12: serial 1 after serial 2 brought back a replaced key."""
    older, newer = _resigned(federation, tmp_path, serial_step=1)
    live = tmp_path / "directory.signed"
    live.write_bytes(newer.read_bytes())
    connector, _ = _connector(tmp_path, federation, linkage_keys, directory=live)
    accepted = connector.factory.directory.serial
    connector.close()
    live.write_bytes(older.read_bytes())  # whoever can write the file puts the old one back
    with pytest.raises(DirectoryRolledBack) as refused:
        _connector(tmp_path, federation, linkage_keys, directory=live)
    assert refused.value.reason == "directory-rolled-back"
    assert str(accepted) in str(refused.value)
    assert (tmp_path / "directory-serials.json").exists()  # kept beside the outbox
    live.write_bytes(newer.read_bytes())  # the newest one still opens
    connector, _ = _connector(tmp_path, federation, linkage_keys, directory=live)
    connector.close()


def test_the_serial_store_path_is_read_from_the_config(tmp_path, federation, linkage_keys):
    older, newer = _resigned(federation, tmp_path, serial_step=1)
    events_map, _ = write_mappings(tmp_path)
    (tmp_path / "events").mkdir()
    config = {
        "council": COUNCILS[0],
        "directory": str(newer),
        "trust_anchor": str(federation.trust_anchor),
        "signing_key": str(federation.keys[COUNCILS[0]].signing.private),
        "linkage_keys": str(linkage_keys),
        "outbox": "state/outbox.sqlite",
        "directory_serials": "serials/accepted.json",
        "kafka": {"bootstrap": "127.0.0.1:9"},
        "sources": [{"name": "h", "kind": "jsonl", "mapping": str(events_map), "path": "events"}],
    }
    path = tmp_path / "connector.yaml"
    path.write_text(yaml.safe_dump(config))
    loaded = load_config(path)
    assert loaded.serials_path == tmp_path / "serials" / "accepted.json"
    open_connector(loaded).close()
    assert loaded.serials_path.exists()
    path.write_text(yaml.safe_dump(dict(config, directory=str(older))))
    with pytest.raises(DirectoryRolledBack):
        open_connector(load_config(path))


def test_a_running_connector_takes_up_a_newer_directory_and_refuses_an_older_one(
    tmp_path, federation, linkage_keys
):
    """A revocation bites at the next loop; an old file put back meanwhile changes nothing."""
    older, newer = _resigned(federation, tmp_path, serial_step=1)
    live = tmp_path / "directory.signed"
    live.write_bytes(older.read_bytes())
    connector, metrics = _connector(tmp_path, federation, linkage_keys, directory=live)
    try:
        first = connector.factory.directory
        live.write_bytes(newer.read_bytes())
        connector.run(once=True)  # nothing to read or publish: one pass of the loop
        taken_up = connector.factory.directory
        assert taken_up.serial == first.serial + 1
        assert taken_up.broker.signing_key != first.broker.signing_key
        live.write_bytes(older.read_bytes())
        connector.run(once=True)
        assert connector.factory.directory.serial == taken_up.serial
        scrape = generate_latest(metrics.registry).decode()
        assert (
            'fedbroker_connector_directory_refused_total{reason="directory-rolled-back"} 1.0'
        ) in scrape
        assert "fedbroker_connector_directory_expires_in_seconds" in scrape
    finally:
        connector.close()
