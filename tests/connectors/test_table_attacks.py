"""Attacks on a PostgreSQL source: rows a council's own table can hold that once
stopped the connector at every start.

Each test failed on the code before its fix.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from connectors import PostgresSource

pytestmark = pytest.mark.postgres


@pytest.fixture
def table(postgres_dsn, request) -> Iterator[str]:
    name = f"attack_{request.node.name[5:40]}".lower()
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute(f"DROP TABLE IF EXISTS {name}")
    yield name
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute(f"DROP TABLE IF EXISTS {name}")


def _load(dsn: str, sql: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute(sql)


def test_a_row_without_a_high_water_value_never_becomes_the_mark(postgres_dsn, table):
    """A row whose high-water column is NULL sorted last in the first batch, and the
    mark became the text 'None': every later pass failed on ``id > 'None'``."""
    _load(postgres_dsn, f"CREATE TABLE {table} (id integer, name text)")
    _load(postgres_dsn, f"INSERT INTO {table} VALUES (1, 'a'), (NULL, 'b'), (2, 'c')")
    source = PostgresSource("t", postgres_dsn, table, "id")
    first = source.batch_after(None)
    assert [mark for mark, _ in first] == ["1", "2"]
    _load(postgres_dsn, f"INSERT INTO {table} VALUES (3, 'd')")
    assert [mark for mark, _ in source.batch_after(first[-1][0])] == ["3"]


def test_a_date_no_python_date_holds_costs_that_value_not_the_table(postgres_dsn, table):
    """PostgreSQL keeps 'infinity', year 10000 and BC dates; psycopg refused to load them
    and the whole batch failed (``DataError``) at every start, wedging the source."""
    _load(
        postgres_dsn,
        f"CREATE TABLE {table} (id integer, dob date, at timestamp, seen timestamptz)",
    )
    _load(
        postgres_dsn,
        f"INSERT INTO {table} VALUES "
        "(1, 'infinity', '-infinity', 'infinity'), "
        "(2, '10000-01-01', '10000-01-01 00:00', '10000-01-01 00:00+00'), "
        "(3, '0044-03-15 BC', '0044-03-15 00:00 BC', '0044-03-15 00:00+00 BC'), "
        "(4, '1980-05-12', '2026-03-01 09:30', '2026-03-01 09:30+00')",
    )
    rows = PostgresSource("t", postgres_dsn, table, "id").batch_after(None)
    values = [dict(row.values) for _, row in rows]
    assert [v["dob"] for v in values] == ["infinity", "10000-01-01", "0044-03-15 BC", "1980-05-12"]
    assert values[0]["at"] == "-infinity" and values[0]["seen"] == "infinity"
    # what a Python date or time can hold reads as before
    assert values[3]["at"] == "2026-03-01 09:30:00"
    assert values[3]["seen"].startswith("2026-03-01 09:30:00")


def test_a_time_typed_into_the_future_does_not_move_the_mark_past_every_later_row(
    postgres_dsn, table
):
    """A high-water column of update times, and a clerk's 2062 for 2026: the mark moved
    to 2062, and every row written after it (dated now) was never read, silently. A
    row dated ahead of the clock is read when its time comes, as a file still being
    written is read once it is dropped."""
    _load(postgres_dsn, f"CREATE TABLE {table} (ref text, updated_at timestamptz)")
    _load(
        postgres_dsn,
        f"INSERT INTO {table} VALUES ('a', now() - interval '1 hour'), "
        "('typo', now() + interval '36 years'), ('b', now() - interval '30 minutes')",
    )
    source = PostgresSource("t", postgres_dsn, table, "updated_at")
    first = source.batch_after(None)
    assert [row.values["ref"] for _, row in first] == ["a", "b"]
    _load(postgres_dsn, f"INSERT INTO {table} VALUES ('c', now())")
    later = source.batch_after(first[-1][0])
    assert [row.values["ref"] for _, row in later] == ["c"]


def test_a_serial_id_typed_far_ahead_is_refused_and_later_rows_still_flow(postgres_dsn, table):
    """A clerk's id 999999999 in a serial column became the mark, and every row the
    sequence numbered after it (1000, 1001, ...) was below the mark: never read. An id
    past the column's sequence was never handed out by it; it is refused, and the
    mark moves only over ids the sequence gave."""
    _load(postgres_dsn, f"CREATE TABLE {table} (id serial PRIMARY KEY, name text)")
    _load(postgres_dsn, f"INSERT INTO {table} (name) VALUES ('a'), ('b')")
    _load(postgres_dsn, f"INSERT INTO {table} (id, name) VALUES (999999999, 'typo')")
    _load(postgres_dsn, f"INSERT INTO {table} (name) VALUES ('c')")
    source = PostgresSource("t", postgres_dsn, table, "id")
    first = source.batch_after(None)
    assert [row.values["name"] for _, row in first] == ["a", "b", "c"]
    ahead = source.rows_ahead(first[-1][0])
    assert [(r.location, r.reason) for r in ahead] == [(f"{table}@999999999", "ahead-of-sequence")]
    _load(postgres_dsn, f"INSERT INTO {table} (name) VALUES ('d')")
    assert [row.values["name"] for _, row in source.batch_after(first[-1][0])] == ["d"]


def test_a_time_mark_of_infinity_is_refused_not_left_waiting(postgres_dsn, table):
    """'infinity' (or a clerk's 2062) in a time column was left out of every batch
    without a word: it waited for a time that never comes. It is refused, visibly."""
    _load(postgres_dsn, f"CREATE TABLE {table} (ref text, updated_at timestamptz)")
    _load(
        postgres_dsn,
        f"INSERT INTO {table} VALUES ('a', now() - interval '1 hour'), ('inf', 'infinity'), "
        "('typo', now() + interval '36 years'), ('b', now() - interval '30 minutes')",
    )
    source = PostgresSource("t", postgres_dsn, table, "updated_at")
    assert [row.values["ref"] for _, row in source.batch_after(None)] == ["a", "b"]
    ahead = source.rows_ahead(None)
    assert [r.reason for r in ahead] == ["ahead-of-clock", "ahead-of-clock"]
    assert ahead[-1].location == f"{table}@infinity"
    assert len({r.position for r in ahead}) == 2
