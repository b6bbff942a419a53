"""A PostgreSQL table read incrementally by a high-water-mark column.

A table source only reads (``connectors._sources``): the connector moves the
high-water mark in the same outbox transaction as the batch's records, so a
crash cannot skip rows. A row whose high-water value is implausibly far ahead
is left out, for the connector to refuse, since as the mark it hid every row
written after it.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from connectors._errors import TableUnreadable
from connectors._sources import SourceRow
from connectors._timestamps import DEFAULT_MAX_SKEW

__all__ = ["DEFAULT_BATCH_ROWS", "AheadReason", "PostgresSource", "RowAhead"]

logger = logging.getLogger(__name__)

#: Why a table row's high-water value is not read past (``PostgresSource.rows_ahead``).
AheadReason = Literal["ahead-of-clock", "ahead-of-sequence"]
DEFAULT_BATCH_ROWS = 5000


@dataclass(frozen=True, slots=True)
class RowAhead:
    """A table row whose high-water value is implausibly far ahead: where it is (its
    table and value, never its other columns), its key for the quarantine, and why."""

    location: str
    position: str
    reason: AheadReason


@dataclass(frozen=True, slots=True)
class PostgresSource:
    """A table read incrementally by a high-water-mark column (an id or a timestamp).

    Rows that share the last high-water value of a batch are always read together,
    so moving the mark past them can never skip a tie. A row whose value is
    implausibly far ahead is never read past (``rows_ahead``): as the mark, it hid
    every row written after it.
    """

    name: str
    dsn: str
    table: str
    high_water_column: str
    batch_rows: int = DEFAULT_BATCH_ROWS
    #: A date or time high-water value further ahead of the database's clock than
    #: this is refused until it is not (``max_clock_skew_s``).
    max_ahead: timedelta = DEFAULT_MAX_SKEW

    def batch_after(self, high_water: str | None) -> list[tuple[str, SourceRow]]:
        """The next rows past ``high_water``, each with its high-water value as text;
        rows ``rows_ahead`` refuses are left out.

        Raises:
            TableUnreadable: PostgreSQL refused the read (its SQLSTATE only).
        """
        import psycopg
        from psycopg import sql

        table, column = self._names()
        refused: TableUnreadable | None = None
        try:
            with psycopg.connect(self.dsn, connect_timeout=10) as connection:
                _out_of_range_times_as_text(connection)
                where, params = self._after(high_water)
                bound = self._bound(connection)
                if bound is not None:
                    where = sql.SQL("{} AND {} <= {}").format(where, column, bound[0])
                    params = (*params, bound[1])
                query = sql.SQL("SELECT * FROM {} {} ORDER BY {} LIMIT %s").format(
                    table, where, column
                )
                cursor = connection.execute(query, (*params, self.batch_rows))
                rows = cursor.fetchall()
                names = [d.name for d in cursor.description or ()]
                if len(rows) == self.batch_rows:
                    last = rows[-1][names.index(self.high_water_column)]
                    ties = sql.SQL("SELECT * FROM {} WHERE {} = %s").format(table, column)
                    seen = sum(1 for r in rows if r[names.index(self.high_water_column)] == last)
                    all_ties = connection.execute(ties, (last,)).fetchall()
                    rows = [r for r in rows if r[names.index(self.high_water_column)] != last]
                    rows.extend(all_ties)
                    logger.debug("batch ended in %d of %d tied rows", seen, len(all_ties))
        except psycopg.Error as exc:
            # Raised below, outside this block: raised here, the driver's exception
            # (whose text quotes row values) would ride along as ``__context__``.
            refused = TableUnreadable(self.name, type(exc).__name__, exc.sqlstate)
        if refused is not None:
            raise refused
        index = names.index(self.high_water_column)
        return [
            (
                str(row[index]),
                SourceRow(
                    f"{self.table}@{row[index]}",
                    number,
                    {n: None if v is None else str(v) for n, v in zip(names, row, strict=True)},
                ),
            )
            for number, row in enumerate(rows, start=1)
        ]

    def rows_ahead(self, high_water: str | None) -> list[RowAhead]:
        """Rows past ``high_water`` whose value is implausibly far ahead (up to
        ``batch_rows`` of them): ``batch_after`` leaves them out, for the connector to
        refuse. Only their high-water column is read.

        A date or time is ahead when it is further ahead of the database's clock
        than ``max_ahead`` ('infinity' always is: as the mark, a clerk's 2062 hid
        every row written after it, and left out silently it waited for ever). An
        id is ahead when its column's sequence (``serial``, identity) never
        handed it out: a clerk's 999999999 typed over the sequence. An id column
        without a sequence, or whose sequence the connector may not read (grant
        it SELECT on it), has no such bound.

        Raises:
            TableUnreadable: PostgreSQL refused the read (its SQLSTATE only).
        """
        import psycopg
        from psycopg import sql

        table, column = self._names()
        refused: TableUnreadable | None = None
        values: list[Any] = []
        reason: AheadReason = "ahead-of-clock"
        try:
            with psycopg.connect(self.dsn, connect_timeout=10) as connection:
                _out_of_range_times_as_text(connection)
                bound = self._bound(connection)
                if bound is not None:
                    where, params = self._after(high_water)
                    reason = bound[2]
                    query = sql.SQL("SELECT {} FROM {} {} AND NOT ({} <= {}) ORDER BY {} LIMIT %s")
                    cursor = connection.execute(
                        query.format(column, table, where, column, bound[0], column),
                        (*params, bound[1], self.batch_rows),
                    )
                    values = [row[0] for row in cursor.fetchall()]
        except psycopg.Error as exc:
            refused = TableUnreadable(self.name, type(exc).__name__, exc.sqlstate)
        if refused is not None:
            raise refused
        ahead: list[RowAhead] = []
        for value, same in itertools.groupby(str(v) for v in values):
            location = f"{self.table}@{value}"
            # Rows tied on one value are told apart by their place among the ties.
            ahead.extend(
                RowAhead(location, f"{location}#{tie}", reason)
                for tie, _ in enumerate(same, start=1)
            )
        return ahead

    def _names(self) -> tuple[Any, Any]:
        from psycopg import sql

        return sql.Identifier(*self.table.split(".")), sql.Identifier(self.high_water_column)

    def _after(self, high_water: str | None) -> tuple[Any, tuple[Any, ...]]:
        """The condition for rows past ``high_water``, and its parameters.

        A row without a high-water value cannot be read past, so it is not read
        until it has one: as the last of a batch it made the text "None" the mark,
        which every later pass failed to compare with (or, in a text column,
        skipped by).
        """
        from psycopg import sql

        column = sql.Identifier(self.high_water_column)
        if high_water is None:
            return sql.SQL("WHERE {} IS NOT NULL").format(column), ()
        return sql.SQL("WHERE {} > %s").format(column), (high_water,)

    def _bound(self, connection: Any) -> tuple[Any, Any, AheadReason] | None:
        """The highest plausible high-water value as SQL and its parameter, and the
        reason a row past it is refused; None for a column that has no such bound."""
        from psycopg import sql

        table, column = self._names()
        probe = sql.SQL("SELECT {} FROM {} LIMIT 0").format(column, table)
        described = connection.execute(probe).description or ()
        type_code = described[0].type_code if described else None
        clock = _CLOCKS.get(type_code) if type_code is not None else None
        if clock is not None:
            return sql.SQL(clock + " + %s"), self.max_ahead, "ahead-of-clock"
        if type_code not in _INTEGERS:
            return None
        # A sequence the role may not read has no bound here, rather than failing the read.
        last = connection.execute(
            "SELECT pg_sequence_last_value(s::regclass) FROM pg_get_serial_sequence(%s, %s) AS s "
            "WHERE s IS NOT NULL AND has_sequence_privilege(s, 'SELECT')",
            (table.as_string(connection), self.high_water_column),
        ).fetchone()
        if last is None or last[0] is None:  # no sequence, or one never used
            return None
        return sql.SQL("%s"), int(last[0]), "ahead-of-sequence"


#: The database's "now" for a high-water column of each date or time type (by OID):
#: ``timestamptz``, and the session's wall clock for ``timestamp`` and ``date``.
_CLOCKS = {1184: "now()", 1114: "localtimestamp", 1082: "localtimestamp"}
#: ``smallint``, ``integer`` and ``bigint`` (by OID): the types a sequence numbers.
_INTEGERS = frozenset({21, 23, 20})


def _out_of_range_times_as_text(connection: Any) -> None:
    """Dates and times that no Python ``date``/``datetime`` holds ('infinity', year
    10000, BC) load as PostgreSQL's text for them, so they cost that value (which then
    fails to parse as any date) instead of failing the batch at every pass: psycopg
    raises ``DataError`` for them, and the batch could never be read past."""
    from psycopg import DataError
    from psycopg.types.datetime import DateLoader, TimestampLoader, TimestamptzLoader

    for name, base in (
        ("date", DateLoader),
        ("timestamp", TimestampLoader),
        ("timestamptz", TimestamptzLoader),
    ):

        class _AsTextOutOfRange(base):  # type: ignore[valid-type, misc]
            def load(self, data: Any) -> Any:
                try:
                    return super().load(data)
                except DataError:
                    return bytes(data).decode("utf-8", "replace")

        connection.adapters.register_loader(name, _AsTextOutOfRange)
