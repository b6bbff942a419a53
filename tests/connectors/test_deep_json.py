"""A JSON Lines row nested thousands deep is one malformed row, not a dead connector.

``json.loads`` raises ``RecursionError`` (not ``ValueError``) on deep nesting;
it escaped the reader, failed ``ingest`` and so ``run``, and since the file
stayed in the watched folder the restarted connector died on it again. This
test failed on the code before its fix.
"""

from __future__ import annotations

import json

from tests.connectors.test_attack_regressions import PERSON, _connector
from tests.connectors.test_poison_rows import _records

DEEP = 100_000


def test_a_deeply_nested_line_is_quarantined_and_the_file_goes_on(
    tmp_path, federation, linkage_keys
):
    connector, _ = _connector(tmp_path, federation, linkage_keys)
    lines = [
        json.dumps(dict(PERSON, ref="r-before")),
        '{"ref": "r-deep", "surname": ' + "[" * DEEP + "]" * DEEP + "}",
        json.dumps(dict(PERSON, ref="r-after")),
    ]
    (tmp_path / "events" / "x.jsonl").write_text("\n".join(lines) + "\n")
    try:
        report = connector.ingest()
        quarantined = {(q.row, q.field, q.reason) for q in connector.outbox.quarantined()}
        published = len(_records(connector.outbox))
    finally:
        connector.close()
    assert quarantined == {(2, "row", "not-json")}
    assert (report.read, published) == (3, 2)
    assert (tmp_path / "events" / "done" / "x.jsonl").exists()
