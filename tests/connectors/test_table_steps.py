"""A PostgreSQL batch is built in steps of ``ROWS_PER_STEP``, like a file.

A batch is 5,000 rows and every row tied on its last high-water value: one
update time shared by a bulk load makes it as large as the load. Sent to the
build pool as one step, it used one worker however many there were, and a
large one outlived the step deadline, so a healthy table was killed as
``worker-stuck`` and rebuilt one row at a time.
"""

from __future__ import annotations

from dataclasses import replace

from connectors import _table_ingest as table_ingest
from connectors import load_mapping, open_connector
from connectors._build_pool import BuildPool
from connectors._config import SourceConfig
from connectors._folder_source import FolderSource
from connectors._postgres_source import PostgresSource
from tests.connectors.conftest import COUNCILS, offline_connector

STEP = 10


def test_a_table_batch_is_built_in_steps_and_committed_whole(
    tmp_path, federation, synthetic, linkage_keys, monkeypatch
):
    monkeypatch.setattr(table_ingest, "ROWS_PER_STEP", STEP)
    folder, _ = offline_connector(tmp_path, federation, synthetic, linkage_keys, tmp_path / "o")
    config = folder.config
    folder.close()
    extract = synthetic.files[COUNCILS[0]]
    columns = load_mapping(synthetic.mapping).columns
    rows = list(FolderSource("t", extract.parent, "csv").rows(extract, columns))[:25]
    assert len(rows) == 25
    batches = [[(f"{i:04d}", row) for i, row in enumerate(rows, start=1)], []]
    monkeypatch.setattr(PostgresSource, "batch_after", lambda self, high_water: batches.pop(0))
    monkeypatch.setattr(PostgresSource, "rows_ahead", lambda self, high_water: [])
    steps: list[int] = []
    build = BuildPool.build

    def counting(self, source, built_steps, now):  # type: ignore[no-untyped-def]
        def each():  # type: ignore[no-untyped-def]
            for step in built_steps:
                steps.append(len(step))
                yield step

        return build(self, source, each(), now)

    monkeypatch.setattr(BuildPool, "build", counting)
    table = SourceConfig(
        "revenues", "postgres", synthetic.mapping, dsn="postgresql://x@127.0.0.1:9/x",
        table="extract", high_water_column="id",
    )  # fmt: skip
    connector = open_connector(replace(config, sources=(table,), build_workers=2))
    try:
        report = connector.ingest()
        assert steps == [STEP, STEP, 5]
        assert report.read == 25 and report.enqueued + report.quarantined == 25
        assert connector.outbox.high_water("revenues") == "0025"
        assert len(connector.outbox.pending(100)) == report.enqueued > 0
    finally:
        connector.close()
