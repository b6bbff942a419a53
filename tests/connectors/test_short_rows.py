"""A CSV row with fewer cells than its header is refused, not read with its values shifted.

A clerk's hand edit or an export that lost a separator leaves a row one cell
short. The reader gave the missing columns None, from the right: every value
after the lost cell sat one column to the left of its name (a surname read as
the given name, a postcode as the date of birth) and the row was linked on
values that were not what their columns said. Which cell is missing cannot be
known, so the row is refused as ``row``/``missing-cells``.
"""

from __future__ import annotations

import csv
import io

from connectors import FolderSource, load_mapping
from tests.connectors.conftest import COUNCILS, offline_connector


def test_a_short_row_is_malformed_and_the_rows_around_it_are_read(tmp_path):
    folder = FolderSource("t", tmp_path, "csv")
    data = b"ref,forename,surname,postcode\nr1,Ann,Lee,M1 1AA\nr2,Bo,M2 2BB\nr3,Cy,Wu,M3 3CC\n"
    rows = list(folder.parse("x.csv", data, frozenset({"ref", "forename", "surname", "postcode"})))
    assert [(r.row, r.malformed) for r in rows] == [(1, None), (2, "missing-cells"), (3, None)]
    assert rows[1].values == {}, "a short row's cells are kept nowhere"
    assert rows[2].values["surname"] == "Wu"


def test_a_connector_quarantines_the_short_row_without_its_values(
    tmp_path, federation, synthetic, linkage_keys, caplog
):
    extract = synthetic.files[COUNCILS[0]].read_text(encoding="utf-8")
    table = list(csv.reader(io.StringIO(extract, newline="")))
    header, body = table[0], table[1:]
    surname = header.index("surname")
    lost = body[2].pop(surname)  # the third row loses its surname cell
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header, *body])
    connector, inbox = offline_connector(
        tmp_path, federation, synthetic, linkage_keys, tmp_path / "o.sqlite"
    )
    (inbox / "extract.csv").write_text(text.getvalue(), encoding="utf-8")
    try:
        report = connector.ingest()
        refused = [(q.row, q.field, q.reason) for q in connector.outbox.quarantined()]
        assert (3, "row", "missing-cells") in refused
        assert report.read == len(body)
        assert report.enqueued + report.quarantined == len(body)
        assert load_mapping(synthetic.mapping).columns >= {"surname"}
    finally:
        connector.close()
    assert lost not in caplog.text
