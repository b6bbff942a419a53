"""A row that repeats an event already in the outbox is kept once and counted as a repeat."""

from __future__ import annotations

from tests.connectors.conftest import COUNCILS, offline_connector


def test_a_row_repeating_an_event_already_held_is_counted_as_such_not_as_enqueued(
    tmp_path, federation, synthetic, linkage_keys
):
    """Event ids are the event's own digest: a clerk's row of the same reference, type
    and time as an earlier one is the same event, kept once, and said so (it was
    counted as enqueued, though nothing was added)."""
    connector, inbox = offline_connector(
        tmp_path, federation, synthetic, linkage_keys, tmp_path / "outbox.sqlite"
    )
    try:
        header, first, *_ = synthetic.files[COUNCILS[0]].read_text().splitlines()
        (inbox / "extract.csv").write_text("\n".join([header, first, first]) + "\n")
        connector.ingest()

        def count(name: str) -> float | None:
            return connector.metrics.registry.get_sample_value(name, {"source": "revenues"})

        assert count("fedbroker_connector_events_enqueued_total") == 1
        assert count("fedbroker_connector_events_repeated_total") == 1
        assert connector.outbox.depth() == 1
    finally:
        connector.close()
