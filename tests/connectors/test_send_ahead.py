"""A file is read in steps, each sent while the next is built; a crash costs one step.

``connectors._send_ahead``: reading and publishing overlap without weakening
the outbox's promise (nothing accepted is lost, nothing acknowledged is sent
again). The steps are made small here so that a small file has several.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Sequence

import pytest

from connectors import (
    KafkaUnavailable,
    Outbox,
    OutboxEntry,
    load_config,
    open_connector,
)
from connectors import _folder_ingest as folder_ingest
from connectors import _runner as runner
from connectors._publisher import Publisher, PublishOutcome, Sending
from connectors._send_ahead import SendAhead
from schemas import CitizenEvent, Codec
from tests.connectors.conftest import (
    COUNCILS,
    offline_connector,
    outbox_ids,
    read_topic,
    uninterrupted,
)
from tests.wire import body_of

STEP = 10


class _Crash(Exception):
    """The machine stops here."""


def test_a_crash_between_steps_resumes_after_the_last_committed_one(
    tmp_path, federation, synthetic, linkage_keys, monkeypatch
):
    monkeypatch.setattr(folder_ingest, "ROWS_PER_STEP", STEP)
    rows, expected = uninterrupted(tmp_path, federation, synthetic, linkage_keys)
    assert rows > 2 * STEP and len(expected) > 2 * STEP

    first, inbox = offline_connector(
        tmp_path / "crash", federation, synthetic, linkage_keys, tmp_path / "crash.sqlite"
    )
    shutil.copy(synthetic.files[COUNCILS[0]], inbox / "extract.csv")
    acknowledged: list[str] = []

    def kafka_acknowledges_then_the_machine_stops() -> None:
        entries = first.outbox.pending(10_000)
        acknowledged.extend(outbox_ids(entries))
        first.outbox.remove([e.seq for e in entries])
        raise _Crash

    with pytest.raises(_Crash):
        first.ingest(after_step=kafka_acknowledges_then_the_machine_stops)
    first.close()
    assert (inbox / "extract.csv").exists(), "the file must stay until it is read to its end"

    again, inbox = offline_connector(
        tmp_path / "crash", federation, synthetic, linkage_keys, tmp_path / "crash.sqlite"
    )
    report = again.ingest()
    left = outbox_ids(again.outbox.pending(10_000))
    again.close()
    # The restart reads on from the committed step: nothing acknowledged is enqueued
    # again, and together the two runs enqueue exactly what one uninterrupted read does.
    assert report.read == rows - STEP
    assert not set(acknowledged) & set(left)
    assert acknowledged + left == expected
    assert (inbox / "done" / "extract.csv").exists()


class _DownPublisher(Publisher):
    """Kafka is unreachable: every attempt to hand records over fails."""

    def __init__(self) -> None:
        super().__init__("127.0.0.1:9")
        self.attempts = 0

    def begin(self, entries: Sequence[OutboxEntry]) -> Sending:
        self.attempts += 1
        raise KafkaUnavailable("cannot reach Kafka (test)")


def test_sending_ahead_stops_for_the_pass_when_kafka_is_down_and_loses_nothing(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite")
    publisher = _DownPublisher()
    outcomes: list[PublishOutcome] = []
    ahead = SendAhead(outbox, publisher, outcomes.append)
    for step in range(3):
        with outbox.transaction() as batch:
            batch.add(f"e{step}", "t", b"k", b"v")
        ahead.step_committed()
    ahead.settle()
    # One attempt, not one per step: each would block for the producer's timeout.
    assert publisher.attempts == 1
    assert outcomes == [] and ahead.acknowledged == 0
    assert outbox_ids(outbox.pending(10)) == ["e0", "e1", "e2"]
    outbox.close()


@pytest.mark.kafka
def test_a_file_of_many_steps_is_published_once_each_by_sending_ahead(
    council_factory, kafka_bootstrap, monkeypatch
):
    monkeypatch.setattr(folder_ingest, "ROWS_PER_STEP", STEP)
    setup = council_factory(COUNCILS[1])
    shutil.copy(setup.synth.files[COUNCILS[1]], setup.inbox / "extract.csv")
    connector = open_connector(load_config(setup.config))
    caught_up: list[int] = []
    publish = connector.publish
    gauges: list[tuple[float, int]] = []

    class Watched(SendAhead):
        def step_committed(self) -> None:
            # The depth gauge is kept by difference between a pass's counts.
            gauges.append((connector.metrics.outbox_depth._value.get(), connector.outbox.depth()))
            super().step_committed()

    monkeypatch.setattr(runner, "SendAhead", Watched)

    def publishing_step(**kwargs: int) -> int:
        caught_up.append(publish(**kwargs))
        return caught_up[-1]

    monkeypatch.setattr(connector, "publish", publishing_step)
    try:
        published = connector.run(once=True)
        quarantined = len(connector.outbox.quarantined())
        depth = connector.outbox.depth()
    finally:
        connector.close()
    codec = Codec()
    ids = Counter(
        body_of(codec, v, CitizenEvent).event_id
        for _, v in read_topic(kafka_bootstrap, setup.events_topic)
    )
    assert depth == 0 and quarantined == 0
    assert len(gauges) > 2 and all(gauge == count for gauge, count in gauges), gauges
    assert published == sum(ids.values()) > 2 * STEP
    assert set(ids.values()) == {1}, "an event reached the topic twice"
    # Every step went out while the next was read: the publishing step found nothing left.
    assert caught_up == [0]
