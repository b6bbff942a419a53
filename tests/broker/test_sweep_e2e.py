"""A token nobody touches again still forgets its expired sighting, through real Kafka.

One council publishes one event that no other event shares a token with,
two days before the longest retention of the agreements that use it ends.
The worker (the real command, on a clock the test moves) keeps it: its row
and the references to it stand in the token-state changelog. Then its
clock moves past the event's expiry, and no event ever arrives under its
tokens again. Before the retention sweep, expiry was applied only when a
later record was routed by the same token, so the row and the references
stayed for ever; now the partition's ticks sweep them: the row is
tombstoned, the states no longer name it, and the seen id (whose window
has not ended) stays. Once the clock passes the end of the event's
freshness window, the seen id goes too, and each token's state, left with
nothing, is tombstoned.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from broker._routed import partition_for
from broker._verify import DEFAULT_MAX_AGE, DEFAULT_MAX_SKEW
from consent import DevFederation, agreements_for, build_dev_federation
from fedbroker import read_to_end
from schemas import CitizenEvent, Codec, EventType
from tests.broker.test_app_e2e import _write
from tests.broker.workers import metric, start_worker, stop_worker, until
from tests.connectors.conftest import COUNCILS, read_topic, run_connector
from tests.ports import free_port
from tests.wire import body_of, is_row, live_rows, table_key

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

A = COUNCILS[0]
PERSON = {"ref": "p1@sweep", "forename": "Ffion", "surname": "Untouched-Sweep",
          "dob": "03/07/1961", "postcode": "M4 5JD", "address_1": "7 Ancoats Lane",
          "uprn": "", "nhs_no": "", "ni_number": "", "event": "MOVE"}  # fmt: skip
SWEPT_WITHIN_S = 120.0
PARTITIONS = 3
#: How long an event id stays seen after its publication: the freshness window.
WINDOW = DEFAULT_MAX_AGE + DEFAULT_MAX_SKEW
#: The event is published this long before its retention ends.
RETENTION_LEFT = timedelta(days=2)
#: Routed messages the match agent handled (ticks included).
MATCHED = 'fedbroker_broker_processing_seconds_count{stage="match"}'
SWEPT = 'fedbroker_broker_swept_total{{what="{}"}}'


def _move(clock: Path, ahead: timedelta) -> None:
    """Run the worker's clock ``ahead`` of the wall clock (replaced whole: never read half)."""
    staged = clock.with_suffix(".new")
    staged.write_text(str(ahead.total_seconds()))
    os.replace(staged, clock)


@pytest.fixture(scope="module")
def federation(tmp_path_factory) -> DevFederation:
    """The councils' federation, its directory valid past the end of a freshness window.

    (The session's is valid for 30 days: a worker whose clock ran past that
    would stop deciding, and its ticks with it.)
    """
    folder = tmp_path_factory.mktemp("federation")
    return build_dev_federation(folder, councils=list(COUNCILS), validity=2 * WINDOW)


@pytest.mark.parametrize("store", ["rocksdb://", "memory://"])
def test_an_untouched_tokens_expired_sighting_is_swept_and_its_row_tombstoned(
    store, council_factory, kafka_bootstrap, federation, topic_factory, tmp_path
):
    retention = max(
        a.retention for a in agreements_for(federation.load(), EventType.ADDRESS_CHANGE, A)
    )
    prefix = topic_factory("fed")
    council = council_factory(A, prefix=prefix)
    occurred = date.today() - retention + RETENTION_LEFT  # kept, for about two more days
    _write(council.inbox, [{**PERSON, "event_date": occurred.isoformat()}])
    run_connector(council, "--once")
    ((_, value),) = read_topic(kafka_bootstrap, council.events_topic)
    event = body_of(Codec(), value, CitizenEvent)
    expires_at = event.occurred_at + retention
    assert expires_at > datetime.now(UTC) + timedelta(hours=1)

    clock = tmp_path / "clock-ahead-s"
    group = topic_factory("broker")
    changelog = f"{group}-token-state-changelog"
    port = free_port()
    worker = start_worker(
        kafka_bootstrap, federation, group=group, prefix=prefix, data_dir=tmp_path / "broker",
        log=tmp_path / "worker.log",
        options=["--checkpoint-interval", "1", "--metrics-port", str(port), "--store", store,
                 "--partitions", str(PARTITIONS)],
        program=[sys.executable, "-m", "tests.broker.clocked_worker", str(clock)],
    )  # fmt: skip
    reference = f'["{event.event_id}/'.encode()

    def rows() -> dict[tuple[str, int], bytes]:
        live = live_rows(read_to_end(kafka_bootstrap, changelog))
        return {k: v for k, v in live.items() if is_row(k[0]) and k[0].startswith(event.event_id)}

    def naming() -> list[str]:
        live = live_rows(read_to_end(kafka_bootstrap, changelog))
        return [k for (k, _), v in live.items() if not is_row(k) and reference in v]

    try:
        tokens = {t.key() for t in (*event.tokens, *event.blocking_tokens)}
        reached = {partition_for(token, PARTITIONS) for token in tokens}
        until(lambda: {p for _, p in rows()} == reached and set(naming()) == tokens,
              "every partition's row and every token's reference are stored")  # fmt: skip
        stored, holders = rows(), naming()
        # ticks sweep the partitions while nothing has expired: not one changelog record
        records = len(read_to_end(kafka_bootstrap, changelog))
        handled = metric(port, MATCHED) or 0
        until(lambda: (metric(port, MATCHED) or 0) >= handled + 9, "three ticks per partition")
        assert len(read_to_end(kafka_bootstrap, changelog)) == records
        # nothing arrives under these tokens again; only the worker's time moves on
        ahead = expires_at - datetime.now(UTC) + timedelta(hours=1)
        _move(clock, ahead)
        until(lambda: not rows() and not naming(), "the expired sighting is swept",
              timeout=SWEPT_WITHIN_S)  # fmt: skip
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        records = read_to_end(kafka_bootstrap, changelog)
        tombstoned = {(table_key(r.key), r.partition) for r in records if r.value is None}
        assert set(stored) <= tombstoned, "each partition's row of the event is tombstoned"
        live = live_rows(records)
        # the seen id outlives the sighting (its window has not ended): the tokens stay
        still = {t: v for (t, _), v in live.items() if t in holders}
        assert set(still) == set(holders)
        assert all(event.event_id.encode() in v for v in still.values())
        assert (metric(port, SWEPT.format("sightings")) or 0) >= len(holders)

        # once the window ends the id goes too, and each token, left with nothing, with it
        ahead = event.published_at + WINDOW - datetime.now(UTC) + timedelta(hours=1)
        _move(clock, ahead)

        def holding() -> set[str]:
            return {t for t, _ in live_rows(read_to_end(kafka_bootstrap, changelog))} & set(holders)

        until(lambda: not holding(), "the tokens are deleted", timeout=SWEPT_WITHIN_S)
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        assert (metric(port, SWEPT.format("seen")) or 0) >= len(holders)
        assert (metric(port, SWEPT.format("states")) or 0) >= len(holders)
    finally:
        stop_worker(worker)
