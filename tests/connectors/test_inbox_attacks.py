"""Attacks on the connector's inbox: what a careless clerk, a hostile insider and a
crashing machine drop into a watched folder.

Each test failed on the code before its fix.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import tracemalloc
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from connectors import FolderSource, SourceConfig, SourceError, open_connector
from tests.connectors.conftest import COUNCILS, offline_config, offline_connector
from tests.connectors.test_attack_regressions import _everything_stored


def _synthetic_rows(synthetic, count: int) -> str:
    """The header and the first ``count`` single-line rows of the first council's extract."""
    lines = synthetic.files[COUNCILS[0]].read_text().splitlines()
    rows = [line for line in lines[1:] if line.count(",") == lines[0].count(",")]
    return "\n".join([lines[0], *rows[:count]]) + "\n"


def test_a_file_refused_for_its_header_is_read_when_dropped_again_after_the_fix(
    tmp_path, federation, synthetic, linkage_keys
):
    """A file refused as a whole (a mapped column missing) used to be marked done: put
    back once the mapping was fixed, it went to done/ unread, and its rows were lost."""
    text = _synthetic_rows(synthetic, 5).replace(",nhs_no,", ",nhs,", 1)
    connector, inbox = offline_connector(
        tmp_path, federation, synthetic, linkage_keys, tmp_path / "outbox.sqlite"
    )
    try:
        (inbox / "extract.csv").write_text(text)
        assert connector.ingest().read == 0
        assert [(q.field, q.reason) for q in connector.outbox.quarantined()] == [
            ("file", "source-unreadable")
        ]
        assert (inbox / "failed" / "extract.csv").exists()
    finally:
        connector.close()
    fixed = yaml.safe_load(synthetic.mapping.read_text())
    fixed["identity"]["nhs_number"] = "nhs"
    mapping = tmp_path / "fixed-mapping.yaml"
    mapping.write_text(yaml.safe_dump(fixed))
    source = SourceConfig("revenues", "csv", mapping, path=inbox)
    config = offline_config(federation, linkage_keys, tmp_path / "outbox.sqlite", (source,))
    again = open_connector(replace(config, build_workers=1))
    try:
        shutil.move(inbox / "failed" / "extract.csv", inbox / "extract.csv")
        report = again.ingest()
        assert report.read == 5
        assert report.enqueued + report.quarantined == 5 and report.enqueued > 0
    finally:
        again.close()


def _read(tmp_path: Path, text: str) -> list[tuple[int, str | None, str | None]]:
    path = tmp_path / "f.csv"
    path.write_text(text)
    rows = FolderSource("s", tmp_path, "csv").rows(path, frozenset({"ref", "name"}))
    return [(r.row, r.values.get("ref"), r.malformed) for r in rows]


@pytest.mark.parametrize(
    "broken",
    [
        '1,"Bob,x\n',  # never closed: ran to the end of the file
        '1,"Bob,x\n2,Ann Lee,y\n3,"Cy" Wu,z\n',  # "closed" by a later row's quote
        '1,Bob,"x\n',  # in the last column: the record still had every cell
    ],
)
def test_a_quote_never_closed_costs_its_row_not_the_rows_it_ran_over(tmp_path, broken):
    """A quote a clerk left open ran on over the next lines: they became one cell of
    one row, so those residents' rows vanished uncounted, and their names and dates
    were that row's given name (linked on) and its payload (sealed to a recipient)."""
    good = [f"{n},Person {n},note {n}" for n in range(4, 9)]
    text = "ref,name,note\n" + broken + "\n".join(good) + "\n"
    rows = _read(tmp_path, text)
    assert rows[0] == (1, None, "unclosed-quote")
    assert [(ref, bad) for _, ref, bad in rows if ref in {"4", "5", "6", "7", "8"}] == [
        (str(n), None) for n in range(4, 9)
    ]
    assert [number for number, _, _ in rows] == list(range(1, len(rows) + 1))


def test_a_quote_never_closed_in_a_large_file_costs_one_row(tmp_path):
    """Past the csv module's cell limit (128 KiB) the open quote raised, and reading
    went on after the line it had reached: some 1,300 rows were lost as one."""
    good = [f"{n},Person {n:05d} {'x' * 80},note" for n in range(2, 3002)]
    rows = _read(tmp_path, 'ref,name,note\n1,"Bob,x\n' + "\n".join(good) + "\n")
    assert rows[0] == (1, None, "unclosed-quote")
    assert [ref for _, ref, _ in rows[1:]] == [str(n) for n in range(2, 3002)]


def test_a_quoted_cell_over_several_lines_is_still_one_row(tmp_path):
    rows = _read(tmp_path, 'ref,name,note\n1,"Ann\nLee","12 High St\r\nSalford"\n2,Bo,x\n')
    assert rows == [(1, "1", None), (2, "2", None)]


def test_a_quote_closed_at_a_later_line_end_costs_its_row_only(tmp_path):
    """Closed at the end of a later line, the runaway cell is strict CSV, but the
    record is short of the cells the lines it took held."""
    rows = _read(tmp_path, 'ref,name,note\n1,"Bob\n2,Ann,Lee"\n3,Cy,z\n')
    assert rows == [(1, None, "unclosed-quote"), (2, "2", None), (3, "3", None)]


def test_an_unreadable_file_in_the_inbox_is_refused_and_the_rest_are_read(
    tmp_path, federation, synthetic, linkage_keys
):
    """A file that fails to read (a bad disk sector, or an insider's link to
    /proc/self/mem) raised out of ``ingest`` at every pass: no file after it was
    ever read again."""
    connector, inbox = offline_connector(
        tmp_path, federation, synthetic, linkage_keys, tmp_path / "outbox.sqlite"
    )
    try:
        (inbox / "a.csv").symlink_to("/proc/self/mem")
        (inbox / "b.csv").write_text(_synthetic_rows(synthetic, 3))
        report = connector.ingest()
        assert report.read == 3
        assert [(q.location, q.field, q.reason) for q in connector.outbox.quarantined()] == [
            ("a.csv", "file", "source-unreadable")
        ]
        assert sorted(p.name for p in inbox.iterdir()) == ["done", "failed"]
    finally:
        connector.close()


def test_a_file_gone_before_it_is_read_costs_only_itself(
    tmp_path, federation, synthetic, linkage_keys, monkeypatch
):
    """A clerk deletes (or another process moves) a file between the folder's listing
    and its reading: the FileNotFoundError failed the pass."""
    connector, inbox = offline_connector(
        tmp_path, federation, synthetic, linkage_keys, tmp_path / "outbox.sqlite"
    )
    listed = FolderSource.ready_files
    monkeypatch.setattr(FolderSource, "ready_files", lambda self: [inbox / "a.csv", *listed(self)])
    try:
        (inbox / "b.csv").write_text(_synthetic_rows(synthetic, 3))
        assert connector.ingest().read == 3
        assert (inbox / "done" / "b.csv").exists()
    finally:
        connector.close()


def test_a_file_named_done_in_the_inbox_does_not_stop_the_connector(
    tmp_path, federation, synthetic, linkage_keys
):
    """A file named ``done`` where the folder for read files goes: moving each read file
    raised after its rows were committed, and again at every pass, so no later file
    (nor any other source) was read again."""
    connector, inbox = offline_connector(
        tmp_path, federation, synthetic, linkage_keys, tmp_path / "outbox.sqlite"
    )
    try:
        (inbox / "done").write_text("not a folder")
        (inbox / "a.csv").write_text(_synthetic_rows(synthetic, 3))
        (inbox / "b.csv").write_text(_synthetic_rows(synthetic, 5))
        assert connector.ingest().read == 8
        assert connector.ingest().read == 0  # read once: left in place, not read again
    finally:
        connector.close()


def test_a_byte_that_is_not_utf8_costs_its_value_not_the_file(
    tmp_path, federation, synthetic, linkage_keys
):
    """One latin-1 byte (a "Siân" exported by an old system) made the whole file
    unreadable: thousands of good rows refused for one value."""
    lines = _synthetic_rows(synthetic, 5).encode().splitlines()
    lines = [lines[0] + b",notes", *(line + b",ok" for line in lines[1:])]
    cells = [line.split(b",") for line in lines]
    forename, ref, notes = (cells[0].index(c) for c in (b"forename", b"ref", b"notes"))
    cells[1][forename] = b"Si\xe2n"  # a mapped identifier: that value is dropped
    cells[2][notes] = b"caf\xe9"  # a column the mapping does not read: nothing lost
    cells[3][ref] = b"r\xff1"  # the reference, without which no record can be made
    connector, inbox = offline_connector(
        tmp_path, federation, synthetic, linkage_keys, tmp_path / "outbox.sqlite"
    )
    try:
        (inbox / "mixed.csv").write_bytes(b"\n".join(b",".join(c) for c in cells) + b"\n")
        report = connector.ingest()
        assert report.read == 5
        assert [(q.row, q.field, q.reason) for q in connector.outbox.quarantined()] == [
            (3, "reference", "not-utf8")
        ]
        assert (1, "given_name", "not-utf8") in {
            (d.row, d.field, d.reason) for d in connector.outbox.dropped()
        }
        assert report.enqueued == 4
        assert (inbox / "done" / "mixed.csv").exists()
    finally:
        connector.close()


def test_a_lone_surrogate_in_a_json_line_costs_its_value(tmp_path):
    """JSON may escape half a surrogate pair (\\udc80): no UTF-8 holds it, and as a
    reference or payload it failed the row's building as an unexpected error."""
    path = tmp_path / "f.jsonl"
    path.write_text('{"ref": "r\\udc801", "name": "Ann"}\n{"ref": "r2", "name": "A\\ud83d"}\n')
    rows = list(FolderSource("s", tmp_path, "jsonl").rows(path, frozenset({"ref", "name"})))
    assert [(dict(r.values), dict(r.unusable)) for r in rows] == [
        ({"ref": None, "name": "Ann"}, {"ref": "not-utf8"}),
        ({"ref": "r2", "name": None}, {"name": "not-utf8"}),
    ]


def test_a_source_that_cannot_be_read_does_not_starve_the_others(
    tmp_path, federation, synthetic, linkage_keys
):
    """A database down for maintenance (or an inbox on a share that went away) raised
    out of ``ingest`` before any later source was looked at, at every pass."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.csv").write_text(_synthetic_rows(synthetic, 3))
    sources = (
        SourceConfig("housing", "postgres", synthetic.mapping,
                     dsn="postgresql://nobody@127.0.0.1:9/none", table="t",
                     high_water_column="id"),
        SourceConfig("gone", "csv", synthetic.mapping, path=tmp_path / "unmounted"),
        SourceConfig("revenues", "csv", synthetic.mapping, path=inbox),
    )  # fmt: skip
    config = offline_config(federation, linkage_keys, tmp_path / "o.sqlite", sources)
    connector = open_connector(replace(config, build_workers=1))
    try:
        with pytest.raises(SourceError, match="source housing"):
            connector.ingest()
        assert (inbox / "done" / "a.csv").exists()
        assert connector.outbox.depth() == 3
    finally:
        connector.close()


def test_a_running_connector_outlives_a_source_that_cannot_be_read(
    tmp_path, federation, synthetic, linkage_keys
):
    """The same error ended ``run``, so the process, at its first pass."""
    table = SourceConfig(
        "housing", "postgres", synthetic.mapping, dsn="postgresql://nobody@127.0.0.1:9/none",
        table="t", high_water_column="id",
    )  # fmt: skip
    config = offline_config(
        federation, linkage_keys, tmp_path / "o.sqlite", (table,), poll_interval_s=0.01
    )
    connector = open_connector(replace(config, build_workers=1))
    stop, passes = threading.Event(), []
    ingest = connector.ingest

    def counted(**kwargs):  # type: ignore[no-untyped-def]
        passes.append(1)
        try:
            return ingest(**kwargs)
        finally:  # after the pass: a pass begun once stop is set reads nothing
            if len(passes) == 3:
                stop.set()

    connector.ingest = counted  # type: ignore[method-assign]
    try:
        assert connector.run(stop=stop) == 0
        assert len(passes) == 3
        sample = connector.metrics.registry.get_sample_value(
            "fedbroker_connector_source_unavailable_total", {"source": "housing"}
        )
        assert sample == 3
    finally:
        connector.close()


def test_a_file_name_that_is_not_utf8_or_holds_a_line_break_is_read_and_labelled_safely(
    tmp_path, federation, synthetic, linkage_keys, caplog
):
    """A name in another encoding (a share's latin-1 "café.csv") could not be written to
    the outbox (SQLite takes only UTF-8): the pass failed at it, every pass. A line
    break or a direction override in a name forged or disguised the connector's log
    lines and the operator's quarantine report."""
    caplog.set_level(logging.INFO, logger="connectors")
    connector, inbox = offline_connector(
        tmp_path, federation, synthetic, linkage_keys, tmp_path / "outbox.sqlite"
    )
    good = _synthetic_rows(synthetic, 2)
    names = {
        os.fsdecode(b"caf\xe9.csv"): "caf\\xe9.csv",
        "a\nERROR connectors forged.csv": "a\\x0aERROR connectors forged.csv",
        "b\u202evsc.csv": "b\\u202evsc.csv",
    }
    try:
        for index, name in enumerate(names):
            (inbox / name).write_text(good + f"{index},x,y,z,extra" + ",x" * 20 + "\n")
        report = connector.ingest()
        assert report.read == 9
        assert sorted(q.location for q in connector.outbox.quarantined()) == sorted(names.values())
        assert sorted(p.name for p in (inbox / "done").iterdir()) == sorted(names)
        for record in caplog.records:
            message = record.getMessage()
            assert message.isprintable(), message
    finally:
        connector.close()


def test_a_key_given_twice_in_a_json_line_costs_that_value(tmp_path):
    """JSON allows a key twice and the parser kept the last: which NHS number a row
    was linked on hung on the order of its keys (a viewer shows the first), where a
    CSV naming a mapped column twice is refused."""
    path = tmp_path / "f.jsonl"
    path.write_text(
        '{"ref": "r1", "nhs": "9434765919", "name": "Ann", "nhs": "4010232137"}\n'
        '{"ref": "r2", "nhs": "9434765919", "nhs": "9434765919"}\n'
    )
    columns = frozenset({"ref", "nhs", "name"})
    rows = list(FolderSource("s", tmp_path, "jsonl").rows(path, columns))
    assert [(dict(r.values), dict(r.unusable)) for r in rows] == [
        ({"ref": "r1", "nhs": None, "name": "Ann"}, {"nhs": "duplicate-key"}),
        ({"ref": "r2", "nhs": "9434765919"}, {}),  # the same value twice is no doubt
    ]


def test_a_second_file_of_the_same_name_does_not_overwrite_the_first_in_failed(
    tmp_path, federation, synthetic, linkage_keys
):
    """Systems drop the same name each day. Moved to failed/ (or done/) under its own
    name, a file replaced the one before it there: a refused file, never read, kept
    only in failed/ for the operator to put back once the mapping is fixed, was lost."""
    connector, inbox = offline_connector(
        tmp_path, federation, synthetic, linkage_keys, tmp_path / "outbox.sqlite"
    )
    monday = _synthetic_rows(synthetic, 2).replace(",nhs_no,", ",nhs,", 1)
    tuesday = _synthetic_rows(synthetic, 3).replace(",nhs_no,", ",nhs,", 1)
    try:
        for text in (monday, tuesday, _synthetic_rows(synthetic, 2), _synthetic_rows(synthetic, 3)):
            (inbox / "extract.csv").write_text(text)
            connector.ingest()
        kept = {
            folder: sorted(p.read_text() for p in (inbox / folder).iterdir())
            for folder in ("failed", "done")
        }
        assert kept["failed"] == sorted([monday, tuesday])
        assert len(kept["done"]) == 2
        assert all(p.suffix == ".csv" for p in (inbox / "failed").iterdir())
    finally:
        connector.close()


def test_a_large_file_is_read_in_steps_not_held_whole_as_rows(
    tmp_path, federation, synthetic, linkage_keys
):
    """Every row of a file was parsed into a dict before the first step was built: some
    13 times the file's size in memory. A 40 MB extract took more than the 512 MiB the
    connector's deployment is given, and killed, it met the same file at every restart."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source = SourceConfig("revenues", "csv", synthetic.mapping, path=inbox)
    # One worker: the steps in flight (two per worker) are the part that does not grow.
    config = offline_config(federation, linkage_keys, tmp_path / "o.sqlite", (source,))
    connector = open_connector(replace(config, build_workers=1))
    header = synthetic.files[COUNCILS[0]].read_text().splitlines()[0]
    blanks = "," * (header.count(",") - 2)  # no identifier: each row is refused quickly
    rows = [f"r{n}{blanks},CT_OPEN,2026-10-03,{'x' * 120}" for n in range(30_000)]
    path = inbox / "large.csv"
    path.write_text("\n".join([header + ",notes", *rows]) + "\n")
    tracemalloc.start()
    try:
        report = connector.ingest()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        connector.close()
    assert report.read == 30_000 and report.quarantined == 30_000
    # The file's text (twice while it is decoded) and the steps in flight, not its rows.
    assert peak < 3 * (inbox / "done" / "large.csv").stat().st_size, peak


SENTINELS = ("Zebedee", "Quaxley", "SW1A 2AA", "9434765919", "QQ123456C")


def test_no_value_of_an_attacking_file_reaches_a_log_metric_or_the_outbox_in_clear(
    tmp_path, federation, synthetic, linkage_keys, caplog
):
    """Recognisable values through every attack above, in one inbox; none may appear
    in a log line, a metric or the outbox's tables (the records are sealed and signed:
    names, numbers and postcodes travel only as tokens and sealed payloads)."""
    caplog.set_level(logging.DEBUG)
    header = "ref,forename,surname,dob,postcode,address_1,uprn,nhs_no,ni_number,event,event_date"
    person = "Zebedee,Quaxley,01/02/1980,SW1A 2AA,1 High St,,9434765919,QQ123456C"
    lines = [
        f"r1,{person},MOVE,2026-10-03",
        f'r2,"{person},MOVE,2026-10-03',  # a quote left open
        f"r3,{person},MOVE,2026-10-03,an extra cell",
        "r4,J\u043ehn Zebedee,Quaxley,01/02/1980,SW1A 2AA,,,9434765918,,MOVE,2026-10-03",
        f"r5,{'Zebedee' * 10_000},Quaxley,,,,,,,MOVE,2026-10-03",
        f"r6,{person},MOVE,2062-10-03",
    ]
    connector, inbox = offline_connector(
        tmp_path, federation, synthetic, linkage_keys, tmp_path / "outbox.sqlite"
    )
    metrics = connector.metrics
    try:
        body = "\n".join([header, *lines]) + "\n"
        (inbox / "attack.csv").write_bytes(body.encode().replace(b"1 High St", b"1 H\xefgh St"))
        (inbox / "headless.csv").write_text("\n".join(lines) + "\n")  # no header row
        report = connector.ingest()
        stored = _everything_stored(connector.outbox.path)
    finally:
        connector.close()
    assert report.read == len(lines)
    scrape = generate_latest(metrics.registry).decode()
    for sentinel in SENTINELS:
        for where, text in (("logs", caplog.text), ("metrics", scrape), ("outbox", stored)):
            assert sentinel not in text, f"{sentinel!r} in {where}"


def test_a_file_swapped_for_a_fifo_after_listing_does_not_wedge_the_connector(
    tmp_path, federation, synthetic, linkage_keys, monkeypatch
):
    """The folder is listed, then each file opened: an insider who swaps a file for a
    named pipe in between (or a link to one) held the connector in ``open`` for ever,
    waiting for a writer that never comes, with every later file and source behind it."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    fifo = inbox / "a.csv"
    os.mkfifo(fifo)
    (inbox / "b.csv").write_text(_synthetic_rows(synthetic, 3))
    monkeypatch.setattr(FolderSource, "ready_files", lambda self: [fifo, inbox / "b.csv"])
    outcome: list[tuple[int, list[tuple[str, str]]]] = []

    def read() -> None:  # in its own thread, outbox and all: the outbox is per thread
        connector, _ = offline_connector(
            tmp_path, federation, synthetic, linkage_keys, tmp_path / "outbox.sqlite"
        )
        try:
            report = connector.ingest()
            refused = [(q.location, q.reason) for q in connector.outbox.quarantined()]
            outcome.append((report.read, refused))
        finally:
            connector.close()

    reading = threading.Thread(target=read, daemon=True)
    reading.start()
    reading.join(timeout=60)  # a bound on the wait, reached only when wedged
    wedged = reading.is_alive()
    while reading.is_alive():  # let the reader go: a writer opens the pipe, closes it
        with contextlib.suppress(OSError):  # ENXIO: no reader has it open this moment
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reading.join(timeout=1)
    assert not wedged
    assert outcome == [(3, [("a.csv", "source-unreadable")])]


def test_a_reference_of_white_space_is_missing_not_one_shared_by_every_such_row(
    tmp_path, federation, synthetic, linkage_keys
):
    """A blank reference is refused as missing, but one of spaces was taken as a
    reference: two residents' events of one type and day got one event id, and the
    second was dropped by the outbox as a repeat, uncounted and unreported."""
    lines = _synthetic_rows(synthetic, 2).splitlines()
    header, first = lines[0], lines[1].split(",")
    second = list(first)
    ref = header.split(",").index("ref")
    forename = header.split(",").index("forename")
    first[ref], second[ref], second[forename] = " ", " ", "Someone Else"
    connector, inbox = offline_connector(
        tmp_path, federation, synthetic, linkage_keys, tmp_path / "outbox.sqlite"
    )
    try:
        (inbox / "a.csv").write_text("\n".join([header, ",".join(first), ",".join(second)]))
        report = connector.ingest()
        assert (report.read, report.enqueued, report.quarantined) == (2, 0, 2)
        assert {(q.field, q.reason) for q in connector.outbox.quarantined()} == {
            ("reference", "missing")
        }
    finally:
        connector.close()


def test_a_file_of_thousands_of_unmapped_columns_costs_no_more_than_its_mapped_ones(
    tmp_path, federation, synthetic, linkage_keys
):
    """Every cell of a row became a dict entry, mapped or not: a header of 5,000
    columns made each short row hundreds of kilobytes in memory, so a file of a few
    megabytes (an insider's, or an export of the wrong table) took gigabytes per step."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source = SourceConfig("revenues", "csv", synthetic.mapping, path=inbox)
    config = offline_config(federation, linkage_keys, tmp_path / "o.sqlite", (source,))
    connector = open_connector(replace(config, build_workers=1))
    lines = _synthetic_rows(synthetic, 1).splitlines()
    wide = ",".join(f"c{n}" for n in range(5_000))
    body = [f"{lines[0]},{wide}", *(f"{lines[1]}{',' * 5_000}" for _ in range(200))]
    (inbox / "wide.csv").write_text("\n".join(body) + "\n")
    size = (inbox / "wide.csv").stat().st_size
    tracemalloc.start()
    try:
        report = connector.ingest()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        connector.close()
    assert report.read == 200
    assert peak < 5 * size, peak


def test_a_file_whose_suffix_a_windows_system_wrote_in_capitals_is_read(
    tmp_path, federation, synthetic, linkage_keys
):
    """``EXTRACT.CSV`` sat in the inbox for ever, never read and never reported."""
    connector, inbox = offline_connector(
        tmp_path, federation, synthetic, linkage_keys, tmp_path / "outbox.sqlite"
    )
    try:
        (inbox / "EXTRACT.CSV").write_text(_synthetic_rows(synthetic, 3))
        assert connector.ingest().read == 3
        assert (inbox / "done" / "EXTRACT.CSV").exists()
    finally:
        connector.close()
