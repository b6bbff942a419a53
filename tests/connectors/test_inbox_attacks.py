"""Attacks on the connector's inbox: what a careless clerk, a hostile insider and a
crashing machine drop into a watched folder.

Each test failed on the code before its fix.
"""

from __future__ import annotations

import shutil
from dataclasses import replace

import yaml

from connectors import SourceConfig, open_connector
from tests.connectors.conftest import COUNCILS, offline_config, offline_connector


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
