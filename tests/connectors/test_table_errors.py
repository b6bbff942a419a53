"""A PostgreSQL error quotes row values; none of it may leave the source's edge.

psycopg's messages carry what the server said, and the server quotes the value
it could not take: ``invalid input syntax for type date: "<a resident's value>"``.
Chained to ``SourceError`` (``raise ... from exc``), that text rode along in the
exception's ``__cause__`` into every traceback and log line that printed it.
"""

from __future__ import annotations

import logging
import subprocess
import traceback
from collections.abc import Iterator

import psycopg
import pytest

from connectors import PostgresSource, SourceError, TableUnreadable
from tests.connectors.conftest import COUNCILS, REPO

pytestmark = pytest.mark.postgres

SECRET = "Siobhan-Ni-Bhriain-1973"


@pytest.fixture
def view(postgres_dsn, request) -> Iterator[str]:
    """A council's view that casts a text column to a date, over a row a clerk typed
    a name into: reading the view fails, and the server quotes the name."""
    name = f"leak_{request.node.name[5:40]}".lower()
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute(f"DROP VIEW IF EXISTS {name}_v")
        db.execute(f"DROP TABLE IF EXISTS {name}")
        db.execute(f"CREATE TABLE {name} (id serial PRIMARY KEY, ref text, dob text)")
        db.execute(f"INSERT INTO {name} (ref, dob) VALUES ('r1', '1980-01-02'), ('r2', %s)",
                   (SECRET,))  # fmt: skip
        db.execute(
            f"CREATE VIEW {name}_v AS SELECT id, ref, dob::date AS dob, "
            f"'2026-03-01T09:30:00'::text AS seen FROM {name}"
        )
    yield f"{name}_v"
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute(f"DROP VIEW IF EXISTS {name}_v")
        db.execute(f"DROP TABLE IF EXISTS {name}")


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        yield from _chain(exc.__context__)
        exc = exc.__cause__


def test_a_server_error_quoting_a_value_keeps_only_its_sqlstate(postgres_dsn, view, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SourceError) as raised:
        PostgresSource("housing", postgres_dsn, view, "id").batch_after(None)
    error = raised.value
    assert isinstance(error, TableUnreadable)
    assert error.sqlstate == "22007"  # invalid_datetime_format: safe, and says what to fix
    assert error.reason == "source-unreadable"
    assert error.__cause__ is None and error.__context__ is None
    for linked in _chain(error):
        assert SECRET not in str(linked) and SECRET not in repr(linked)
        assert SECRET not in repr(vars(linked)) if hasattr(linked, "__dict__") else True
    printed = "".join(traceback.format_exception(error))
    assert SECRET not in printed and "22007" in printed
    assert SECRET not in caplog.text


def test_a_connector_reading_it_logs_and_prints_no_value(council_factory, postgres_dsn, view):
    setup = council_factory(
        COUNCILS[0],
        sources=[{"name": "housing", "kind": "postgres", "dsn": postgres_dsn, "table": view,
                  "high_water_column": "id", "mapping": "mapping.yaml"}],
    )  # fmt: skip
    (setup.config.parent / "mapping.yaml").write_text(
        "system: housing\nevent_type: address-change\nidentity: {date_of_birth: dob}\n"
        "reference: ref\noccurred_at: {column: seen}\n"
    )
    result = subprocess.run(
        [str(REPO / ".venv/bin/fedbroker"), "connector", "run", "--config", str(setup.config),
         "--once"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "22007" in result.stderr
    assert SECRET not in result.stdout + result.stderr
