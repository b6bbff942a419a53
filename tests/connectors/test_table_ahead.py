"""A connector reading a table quarantines a row whose high-water value is implausibly
far ahead, once, counted and logged without its values, and reads the rows after it."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest

from connectors import SourceConfig, open_connector
from tests.connectors.conftest import COUNCILS, offline_config

pytestmark = pytest.mark.postgres


@pytest.fixture
def table(postgres_dsn) -> Iterator[str]:
    name = "ahead_connector"
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute(f"DROP TABLE IF EXISTS {name}")
    yield name
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute(f"DROP TABLE IF EXISTS {name}")


def test_a_row_far_ahead_is_quarantined_once_and_the_rest_are_read(
    postgres_dsn, table, federation, synthetic, linkage_keys, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    with synthetic.files[COUNCILS[0]].open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[:6]
    columns = list(rows[0])
    insert = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
    )
    typo = rows[2]
    with psycopg.connect(postgres_dsn, autocommit=True) as db, db.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {table} (id serial PRIMARY KEY, "
            + ", ".join(f"{c} text" for c in columns) + ")"
        )  # fmt: skip
        cursor.executemany(insert, [tuple(r[c] for c in columns) for r in rows[:2]])
        cursor.execute(
            f"INSERT INTO {table} (id, {', '.join(columns)}) "
            f"VALUES (999999999, {', '.join(['%s'] * len(columns))})",
            tuple(typo[c] for c in columns),
        )
        cursor.executemany(insert, [tuple(r[c] for c in columns) for r in rows[3:]])
    source = SourceConfig("housing", "postgres", synthetic.mapping, dsn=postgres_dsn,
                          table=table, high_water_column="id")  # fmt: skip
    config = offline_config(federation, linkage_keys, tmp_path / "o.sqlite", (source,))
    connector = open_connector(replace(config, build_workers=1))
    try:
        first = connector.ingest()
        second = connector.ingest()
        refused = [(q.location, q.field, q.reason) for q in connector.outbox.quarantined()]
        counted = connector.metrics.registry.get_sample_value(
            "fedbroker_connector_rows_quarantined_total",
            {"source": "housing", "field": "row", "reason": "ahead-of-sequence"},
        )
        mark = connector.outbox.high_water("housing")
    finally:
        connector.close()
    assert refused.count((f"{table}@999999999", "row", "ahead-of-sequence")) == 1
    assert counted == 1
    assert mark == "5", "the rows the sequence numbered after the typo were read"
    assert first.read == 5 and second.read == 0
    assert "ahead" in caplog.text
    for value in (typo["surname"], typo["forename"], typo["dob"]):
        assert value not in caplog.text
