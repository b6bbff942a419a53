"""Where council records come from: files dropped in a watched folder, or a PostgreSQL table.

Sources only read; they never decide what a row means (the mapping does) and
never move a high-water mark themselves: the pipeline does that in the outbox
transaction, so a crash cannot skip rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import logging
import os
import re
import shutil
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from connectors._errors import SourceError, TableUnreadable
from connectors._timestamps import DEFAULT_MAX_SKEW

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "MAX_LINE_CHARS",
    "AheadReason",
    "FileKind",
    "FolderSource",
    "MalformedReason",
    "PostgresSource",
    "RowAhead",
    "SourceRow",
    "file_label",
]

logger = logging.getLogger(__name__)

FileKind = Literal["csv", "jsonl"]
#: Why a reader could not parse a record; a closed set, never a source value.
MalformedReason = Literal[
    "unparseable",
    "extra-cells",
    "missing-cells",
    "unclosed-quote",
    "not-json",
    "not-an-object",
    "line-too-long",
]
#: Why a table row's high-water value is not read past (``PostgresSource.rows_ahead``).
AheadReason = Literal["ahead-of-clock", "ahead-of-sequence"]
DEFAULT_BATCH_ROWS = 5000
#: No line of a council extract is this long. One that is (a lost line end, a
#: file of commas) costs its record before parsing: the csv module would make
#: a string per cell, some 25 times the line's size in memory.
MAX_LINE_CHARS = 1_048_576


def file_label(path: Path) -> str:
    """A file's name as logs, the quarantine and the outbox record it: printable, one line.

    A byte of a name that is not UTF-8 (which SQLite cannot store) is written
    ``\\xNN``, and a line break, a direction override or any other unprintable
    character ``\\xNN``/``\\uNNNN``, so a name can neither fail the outbox nor forge
    or disguise a log line.
    """
    return "".join(_printable(c) for c in path.name)


def _printable(char: str) -> str:
    if char.isprintable():
        return char
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte os.fsdecode kept from a name that is not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One record as text values by column, and where it came from (for quarantine).

    ``malformed`` is the reader's reason code for a record it could not parse.
    It is kept out of ``values`` on purpose: an in-band marker key is a key a
    source row can carry too, which once let a clear value become a reason
    code and a metric label.
    """

    location: str
    row: int
    values: Mapping[str, str | None]
    malformed: MalformedReason | None = None
    #: Columns whose value could not be used, and why: ``not-utf8`` (a byte that is
    #: not UTF-8, or half a surrogate pair), ``duplicate-key`` (a JSON key given twice
    #: with different values). Their value is None here; each the mapping reads is
    #: reported as dropped with that code.
    unusable: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FolderSource:
    """A folder a council system drops CSV or JSON Lines files into.

    A file is taken whole: the pipeline commits all its rows in one outbox
    transaction, then ``finish`` moves it to ``done/`` (or ``failed/`` if it
    could not be read at all). Hidden and ``.tmp`` files are still being written.
    """

    name: str
    directory: Path
    kind: FileKind

    def ready_files(self) -> list[Path]:
        if not self.directory.is_dir():
            raise SourceError(f"source {self.name}: folder {self.directory} does not exist")
        return sorted(
            p
            for p in self.directory.iterdir()
            if p.is_file()
            and p.suffix.lower() == f".{self.kind}"  # EXTRACT.CSV was never read, nor reported
            and not p.name.startswith(".")
        )

    @staticmethod
    def read(path: Path) -> bytes:
        """The file's bytes, from one open of it as a regular file.

        Read once, for its digest and its rows alike (read twice, a file changed in
        between was marked done under a digest of other bytes). Opened without
        blocking and checked after opening: a file swapped for a named pipe after
        the folder was listed held ``open`` for ever, waiting for a writer.

        Raises:
            SourceError: it cannot be read (gone since listed, an I/O error), or is
                no regular file.
        """
        label = file_label(path)
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise SourceError(f"{label}: unreadable ({type(exc).__name__})") from exc
        try:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise SourceError(f"{label}: unreadable (not a regular file)")
            with os.fdopen(descriptor, "rb", closefd=False) as handle:
                return handle.read()
        except OSError as exc:  # an I/O error, a link to something unreadable
            raise SourceError(f"{label}: unreadable ({type(exc).__name__})") from exc
        finally:
            os.close(descriptor)

    @staticmethod
    def digest(data: bytes) -> str:
        """The SHA-256 a file is known by (``read``'s bytes)."""
        return hashlib.sha256(data).hexdigest()

    def rows(self, path: Path, required: frozenset[str]) -> Iterator[SourceRow]:
        """Rows of one file, each with the ``required`` columns (the ones its mapping
        reads) only; raises ``SourceError`` if the file as a whole is unreadable."""
        return self.parse(file_label(path), self.read(path), required)

    def parse(self, label: str, data: bytes, required: frozenset[str]) -> Iterator[SourceRow]:
        """Rows of a file's bytes (``read``), ``label`` naming it (``file_label``);
        raises ``SourceError`` when they are unreadable as a whole (a CSV's header).

        A byte that is not UTF-8 costs the value it is in (``SourceRow.unusable``),
        not the file: one latin-1 "Siân" refused every row of its extract.
        """
        text = data.decode("utf-8-sig", errors="surrogateescape")
        del data  # only the text is kept while the rows are read
        if self.kind == "csv":
            yield from _csv_rows(label, text, required)
        else:
            yield from _jsonl_rows(label, text, required)

    def finish(self, path: Path, *, ok: bool) -> Path:
        """Moves the file to ``done/`` or ``failed/``, beside any earlier file of its name.

        Systems drop the same name every day: moved over it, a refused file kept
        there only to be put back once fixed was gone. A later one is
        ``<stem>.<n><suffix>`` (``extract.2.csv``), still a ``.csv`` to put back.
        """
        target = self.directory / ("done" if ok else "failed")
        target.mkdir(exist_ok=True)
        destination, copy = target / path.name, 1
        while destination.exists() or destination.is_symlink():
            copy += 1
            destination = target / f"{path.stem}.{copy}{path.suffix}"
        shutil.move(str(path), destination)
        return destination


class _LineTooLong(SourceError):
    """A physical line over ``MAX_LINE_CHARS``, raised through the csv reader
    (caught where rows are read: it costs that record, or the file at its header)."""


class _CappedLines:
    """The text's lines for ``csv``; a line over ``MAX_LINE_CHARS`` raises ``_LineTooLong``
    (once, then reading goes on after it) instead of reaching the parser. Lines are
    sliced from the text as they are read, never copied whole. ``at`` is where the
    next line starts, and reading can be taken back to any line start (``at = ...``)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def __iter__(self) -> _CappedLines:
        return self

    def end_of_line(self, start: int) -> int:
        """Where the line starting at ``start`` ends (after its line break)."""
        text = self.text
        # A line ends at "\r\n", "\r" or "\n", as ``io.StringIO(newline="")`` splits it.
        end = text.find("\n", start)
        end = len(text) if end < 0 else end + 1
        cr = text.find("\r", start, end)
        if cr >= 0:
            end = cr + 2 if text.startswith("\r\n", cr) else cr + 1
        return end

    def __next__(self) -> str:
        start = self.at
        if start >= len(self.text):
            raise StopIteration
        end = self.at = self.end_of_line(start)
        if end - start > MAX_LINE_CHARS:
            raise _LineTooLong("a line is too long")
        return self.text[start:end]


def _closed(record: str, cells: int) -> bool:
    """Whether a record read over several lines is one well-formed record of at least
    ``cells`` cells, and not a quote left open that ran on over the records after it
    (the lenient reader takes the rest of the file, or up to some later quote, as one
    cell, so the record is short of cells or is no strict CSV)."""
    try:
        parsed = list(csv.reader(io.StringIO(record, newline=""), strict=True))
    except csv.Error:
        return False
    return len(parsed) == 1 and len(parsed[0]) >= cells


def _csv_rows(name: str, text: str, required: frozenset[str]) -> Iterator[SourceRow]:
    lines = _CappedLines(text)
    reader = csv.reader(lines)
    try:
        names = next(reader, [])
    except (csv.Error, _LineTooLong) as exc:  # a header over a size limit: no row can be read
        raise SourceError(f"{name}: header unparseable") from exc
    if any(_SURROGATE.search(n) for n in names):  # not a header: binary, or another encoding
        raise SourceError(f"{name}: unreadable (its header is not UTF-8)")
    missing = sorted(required - set(names))
    if missing:
        raise SourceError(f"{name}: missing columns {missing}")
    # Of two same-named cells the last would be kept: which value a row is linked
    # on would hang on column order, so a mapped column named twice refuses the file.
    twice = sorted(n for n in required if names.count(n) > 1)
    if twice:
        raise SourceError(f"{name}: columns named twice {twice}")
    # Only the cells the mapping reads are kept: a row of every cell of a header of
    # thousands of columns took hundreds of kilobytes, a step of them gigabytes.
    mapped = [(index, column) for index, column in enumerate(names) if column in required]
    number = 0
    while True:
        start = lines.at
        malformed: MalformedReason | None = None
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error:
            # One unparseable record (a cell over the csv module's size limit, a
            # stray NUL) costs that record; the reader resumes at the next line.
            malformed, cells = "unparseable", []
        except _LineTooLong:
            malformed, cells = "line-too-long", []
        if not cells and malformed is None:  # a blank line is no record
            continue
        number += 1
        first_end = lines.end_of_line(start)
        if lines.at > first_end and (
            malformed is not None or not _closed(text[start : lines.at], len(names))
        ):
            # A record over several lines that is not one record: a quote left open
            # took the lines after it. It costs its own first line; they are read again.
            malformed, lines.at = "unclosed-quote", first_end
        if malformed is None and len(cells) > len(names):
            malformed = "extra-cells"
        elif malformed is None and len(cells) < len(names):
            # Which cell was lost cannot be known: read from the left, every value
            # after it sat under the next column's name (a postcode as a surname).
            malformed = "missing-cells"
        if malformed is not None:
            yield SourceRow(name, number, {}, malformed=malformed)
            continue
        values = {k: cells[i] or None for i, k in mapped}
        yield _decoded(name, number, values)


#: A lone surrogate: a byte ``surrogateescape`` kept from invalid UTF-8, or half a
#: pair from a JSON escape. No UTF-8 text holds one.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _decoded(
    name: str, number: int, values: dict[str, str | None], twice: Iterable[str] = ()
) -> SourceRow:
    unusable = dict.fromkeys(twice, "duplicate-key")
    unusable.update(
        (k, "not-utf8")
        for k, v in values.items()
        if v is not None and not v.isascii() and _SURROGATE.search(v)
    )
    for key in unusable:
        values[key] = None
    return SourceRow(name, number, values, unusable=unusable)  # a dict: rows are pickled


class _JsonObject(dict[str, Any]):
    """A JSON object and the keys it gave twice with different values (the parser
    keeps the last; which one a row is linked on must not hang on key order)."""

    twice: frozenset[str] = frozenset()


def _object(pairs: list[tuple[str, Any]]) -> _JsonObject:
    made = _JsonObject()
    twice = set()
    for key, value in pairs:
        if key in made and made[key] != value:
            twice.add(key)
        made[key] = value
    made.twice = frozenset(twice)
    return made


def _jsonl_rows(name: str, text: str, required: frozenset[str]) -> Iterator[SourceRow]:
    # Lines end at "\n" only (JSON Lines): str.splitlines() also splits at U+2028,
    # U+0085 and others, which JSON allows raw inside a string value.
    for number, line in enumerate(text.split("\n"), start=1):
        if len(line) > MAX_LINE_CHARS:
            yield SourceRow(name, number, {}, malformed="line-too-long")
            continue
        if not line.strip():
            continue
        try:
            record: Any = json.loads(line, object_pairs_hook=_object)
        except (ValueError, RecursionError):  # a line nested a few thousand deep is not a row
            yield SourceRow(name, number, {}, malformed="not-json")
            continue
        if not isinstance(record, _JsonObject):  # every object is one (``_object``)
            yield SourceRow(name, number, {}, malformed="not-an-object")
            continue
        values = {key: _text(v) for k, v in record.items() if (key := str(k)) in required}
        yield _decoded(name, number, values, record.twice & required)


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else json.dumps(value)


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
