"""One message at a time, without Kafka: the store, the in-doubt question, bounded bugs."""

from __future__ import annotations

import json

import pytest

from schemas import Codec
from subscriber import (
    CallbackSink,
    DeadLetterFile,
    Delivery,
    DeliveryStore,
    HandoverFailed,
    JsonLinesSink,
    OpenedNotification,
    Place,
    Retry,
    SubscriberMetrics,
    SubscriberSettings,
    read_notification,
)
from tests.subscriber.factory import SERVICE, notification_bytes


@pytest.fixture
def make_delivery(federation, tmp_path):
    def make(sink, *, max_unexpected_attempts=3):
        settings = SubscriberSettings(
            bootstrap="unused:9092", service=SERVICE, store=tmp_path / "store.sqlite",
            dead_letters=tmp_path / "dead.jsonl", max_unexpected_attempts=max_unexpected_attempts,
        )  # fmt: skip
        store = DeliveryStore(settings.store)
        return store, Delivery(
            settings, directory=federation.load(), key=federation.sealing_key(SERVICE),
            sink=sink, store=store, dead_letters=DeadLetterFile(settings.dead_letters),
            metrics=SubscriberMetrics(),
        )  # fmt: skip

    return make


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_id_in_doubt_that_reached_the_file_is_not_written_again(
    federation, make_delivery, tmp_path
):
    """The crash window between the sink's fsync and the store's commit."""
    nid, value = notification_bytes(federation, 1)
    out = tmp_path / "out.jsonl"
    notification = read_notification(value, directory=federation.load(), codec=Codec())
    from subscriber import open_notification

    opened = open_notification(
        notification, service=SERVICE, key=federation.sealing_key(SERVICE),
        directory=federation.load(),
    )  # fmt: skip
    store, delivery = make_delivery(JsonLinesSink(out))
    store.mark_pending(nid)  # as the crashed process left it ...
    JsonLinesSink(out).deliver(opened)  # ... after the hand-over had finished
    assert delivery.handle(Place("t", 0, 0), value) == "duplicate"
    assert [line["notification_id"] for line in _lines(out)] == [nid]
    assert store.state(nid) == "delivered" and store.next_offset("t", 0) == 1


def test_an_id_in_doubt_that_never_reached_the_file_is_handed_over_once(
    federation, make_delivery, tmp_path
):
    nid, value = notification_bytes(federation, 1)
    out = tmp_path / "out.jsonl"
    store, delivery = make_delivery(JsonLinesSink(out))
    store.mark_pending(nid)
    assert delivery.handle(Place("t", 0, 0), value) == "delivered"
    assert delivery.handle(Place("t", 0, 1), value) == "duplicate"
    assert [line["notification_id"] for line in _lines(out)] == [nid]


def test_a_line_torn_by_a_crash_is_cut_off_and_the_notification_written_whole(
    federation, make_delivery, tmp_path
):
    nid, value = notification_bytes(federation, 1)
    out = tmp_path / "out.jsonl"
    out.write_text('{"notification_id": "ntf-earlier"}\n{"notification_id": "' + nid[:9])
    store, delivery = make_delivery(JsonLinesSink(out))
    store.mark_pending(nid)
    assert delivery.handle(Place("t", 0, 0), value) == "delivered"
    assert [line["notification_id"] for line in _lines(out)] == ["ntf-earlier", nid]


def test_a_sink_that_cannot_confirm_gets_the_in_doubt_one_again_marked_so(
    federation, make_delivery
):
    nid, value = notification_bytes(federation, 1)
    calls: list[tuple[str, bool]] = []

    class Recording(CallbackSink):
        def deliver(self, notification: OpenedNotification, *, in_doubt: bool = False) -> None:
            calls.append((notification.notification_id, in_doubt))

    store, delivery = make_delivery(Recording(lambda n: None))
    store.mark_pending(nid)
    assert delivery.handle(Place("t", 0, 0), value) == "delivered"
    assert calls == [(nid, True)]


def test_an_unexpected_error_is_retried_a_bounded_number_of_times_across_restarts(
    federation, make_delivery
):
    """A bug that kills the process each time must not wedge the partition forever."""
    nid, value = notification_bytes(federation, 1)

    def broken(notification: OpenedNotification) -> None:
        raise KeyError("a bug")

    outcomes = []
    for _ in range(3):  # each a fresh process on the same store
        store, delivery = make_delivery(CallbackSink(broken))
        outcomes.append(delivery.handle(Place("t", 0, 7), value))
        store.close()
    assert outcomes[:2] == [Retry("unexpected-error")] * 2
    assert outcomes[2] == "dead-lettered"
    store, _ = make_delivery(CallbackSink(broken))
    assert store.next_offset("t", 0) == 8 and store.state(nid) == "pending"


def test_restarts_during_a_hand_over_outage_never_set_the_notification_aside(
    federation, make_delivery
):
    """A process that returned from a message did not die on it (attack round 2).

    The first message of each partition after a start is counted as a possible
    death; a service down for an hour while its subscriber is restarted a few
    times used to reach ``crashed-repeatedly`` on a notification that never
    crashed anything, and it was dead-lettered instead of handed over.
    """
    nid, value = notification_bytes(federation, 1)
    handed: list[str] = []
    down = True

    def webhook(notification: OpenedNotification) -> None:
        if down:
            raise HandoverFailed("the service is down")
        handed.append(notification.notification_id)

    for _ in range(5):  # five restarts while the service is down, each retrying twice
        store, delivery = make_delivery(CallbackSink(webhook))
        assert delivery.handle(Place("t", 0, 3), value, first=True) == Retry("handover-failed")
        assert delivery.handle(Place("t", 0, 3), value) == Retry("handover-failed")
        store.close()
    down = False
    store, delivery = make_delivery(CallbackSink(webhook))
    assert delivery.handle(Place("t", 0, 3), value, first=True) == "delivered"
    assert handed == [nid] and store.next_offset("t", 0) == 4


def test_an_id_in_doubt_is_confirmed_after_another_partition_wrote_its_line_first(
    federation, make_delivery, tmp_path
):
    """Attack round 5: the crash left X in doubt on partition 1; on restart partition 0's
    batch came first and appended Y, so X was no longer the file's last line and the
    JSON Lines sink answered "not handed over": X was written a second time."""
    nid, value = notification_bytes(federation, 1)
    other_id, other = notification_bytes(federation, 2)
    out = tmp_path / "out.jsonl"
    crashed_store, _ = make_delivery(JsonLinesSink(out))
    crashed_store.mark_pending(nid)  # the crashed process had handed X over ...
    JsonLinesSink(out).deliver(_opened(federation, value))  # ... and died before its commit
    crashed_store.close()

    store, delivery = make_delivery(JsonLinesSink(out))  # the restart
    assert delivery.handle(Place("t", 0, 0), other, first=True) == "delivered"
    assert delivery.handle(Place("t", 1, 0), value, first=True) == "duplicate"
    assert [line["notification_id"] for line in _lines(out)] == [nid, other_id]
    assert store.state(nid) == "delivered" and store.next_offset("t", 1) == 1


def _opened(federation, value):
    from subscriber import open_notification

    notification = read_notification(value, directory=federation.load(), codec=Codec())
    return open_notification(
        notification, service=SERVICE, key=federation.sealing_key(SERVICE),
        directory=federation.load(),
    )  # fmt: skip
