"""Files a council system drops in a watched folder, read as CSV or JSON Lines.

A folder source only reads (``connectors._sources``): the connector commits a
file's rows and its progress in the outbox, then moves it out of the inbox.
A record a reader cannot parse costs that record (``SourceRow.malformed``), a
value it cannot use that value (``SourceRow.unusable``); only a file that cannot
be read, or whose CSV header cannot be used, costs the file (``SourceError``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from connectors._errors import SourceError
from connectors._sources import MalformedReason, SourceRow

__all__ = ["MAX_LINE_CHARS", "FileKind", "FolderSource", "file_label"]

FileKind = Literal["csv", "jsonl"]
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
