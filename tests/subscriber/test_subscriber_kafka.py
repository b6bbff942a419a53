"""The subscriber through the real Kafka: attacks and poison between good notifications."""

from __future__ import annotations

import json
import threading

import pytest

from consent import generate_signing_key
from subscriber import Backoff, CallbackSink, DeliveryStore, OpenedNotification, WebhookSink
from tests.ports import free_port
from tests.subscriber.conftest import committed, end_offsets, publish, wait_for
from tests.subscriber.factory import (
    CLOSED,
    OTHER_SERVICE,
    SECRET_NAME,
    Sealed,
    notification_bytes,
)
from tests.subscriber.webhook_server import serve

pytestmark = pytest.mark.kafka

FAST = Backoff(initial=0.05, factor=2.0, maximum=0.2, attempts=0)


def test_every_good_notification_is_handed_over_once_and_every_bad_one_dead_lettered(
    federation, kafka_bootstrap, notify_topic, subscriber_factory, topic_factory, caplog
):
    good = [notification_bytes(federation, n) for n in range(1, 6)]
    bug_id, bug = notification_bytes(federation, 99)

    messages = [
        good[0],
        notification_bytes(federation, 50, signer=generate_signing_key()),  # forged
        good[1],
        notification_bytes(federation, 51, sealed=[Sealed(0, CLOSED, key_of=OTHER_SERVICE)]),
        good[2],
        notification_bytes(federation, 52, sealed=[Sealed(0, {**CLOSED, "nhs_number": "9"})]),
        good[0],  # a duplicate that reached the topic
        ("garbage", b"\xc3\x01\x00\x00garbage"),
        ("tombstone", None),
        good[3],
        (bug_id, bug),  # the service's callback raises an unexpected error on it
        notification_bytes(federation, 53, tamper=True),
        good[4],
    ]
    publish(kafka_bootstrap, notify_topic, messages)
    received: list[OpenedNotification] = []

    def callback(notification: OpenedNotification) -> None:
        if notification.notification_id == bug_id:
            raise RuntimeError(f"a bug that quotes {notification.fields}")
        received.append(notification)

    group = topic_factory("group")
    subscriber = subscriber_factory(
        notify_topic, sink=CallbackSink(callback), group=group, retry_backoff=FAST
    )
    subscriber.run(max_delivered=5, idle_timeout=60)

    assert [n.notification_id for n in received] == [nid for nid, _ in good]
    assert all(n.fields[f"evt-{i + 1}-a"] == CLOSED for i, n in enumerate(received))
    letters = subscriber.dead_letters.read()
    assert [letter.reason for letter in letters] == [
        "signature-invalid", "sealing-failed", "field-not-granted", "unknown-schema",
        "truncated", "unexpected-error", "signature-invalid",
    ]  # fmt: skip
    assert letters[5].error_type == "RuntimeError" and letters[5].notification_id == bug_id
    assert letters[0].notification_id is None  # a forger's ids are not repeated
    for text in (subscriber.dead_letters.path.read_text(), caplog.text):
        assert SECRET_NAME not in text and "Alice" not in text
    tally = subscriber.metrics.tally
    assert tally["duplicate"] == 1 and tally["dead-lettered"] == 7
    sample = subscriber.metrics.registry.get_sample_value(
        "fedbroker_subscriber_dead_letters_total", {"reason": "signature-invalid"}
    )
    assert sample == 2
    assert committed(kafka_bootstrap, group, notify_topic)[0] == len(messages)
    assert end_offsets(kafka_bootstrap, notify_topic)[0] == len(messages)


def test_a_restarted_subscriber_resumes_and_hands_nothing_over_twice(
    federation, kafka_bootstrap, notify_topic, subscriber_factory, tmp_path, topic_factory
):
    first = [notification_bytes(federation, n) for n in range(1, 4)]
    publish(kafka_bootstrap, notify_topic, first)
    group = topic_factory("group")
    received: list[OpenedNotification] = []
    subscriber = subscriber_factory(notify_topic, received=received, group=group)
    subscriber.run(max_delivered=3, idle_timeout=60)
    subscriber.close()

    # The same ids again (a broker replay) and one new one; a new group too, as if
    # Kafka's committed offsets were lost: the store alone must keep the promise.
    publish(kafka_bootstrap, notify_topic, [*first, notification_bytes(federation, 4)])
    for again, limit in ((group, 1), (topic_factory("group"), 0)):
        restarted = subscriber_factory(notify_topic, received=received, group=again)
        restarted.run(max_delivered=limit, idle_timeout=5)
        restarted.close()
    ids = [n.notification_id for n in received]
    assert len(ids) == len(set(ids)) == 4


def test_the_agreement_filter_passes_other_agreements_by_without_handing_them_over(
    federation, kafka_bootstrap, notify_topic, subscriber_factory
):
    publish(kafka_bootstrap, notify_topic, [notification_bytes(federation, 1)])
    received: list[OpenedNotification] = []
    subscriber = subscriber_factory(
        notify_topic, received=received, agreement="gm-multiple-disadvantage"
    )
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.1):
            if subscriber.metrics.tally["skipped"]:
                subscriber.stop()
                return

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        subscriber.run(idle_timeout=30)
    finally:
        done.set()
        watcher.join()
    assert received == [] and subscriber.metrics.tally["skipped"] == 1


def test_a_webhook_down_for_a_while_then_back_loses_nothing_doubles_nothing_commits_after(
    federation, kafka_bootstrap, notify_topic, subscriber_factory, topic_factory
):
    good = [notification_bytes(federation, n) for n in range(1, 6)]
    publish(kafka_bootstrap, notify_topic, [*good[:3], good[0], *good[3:]])
    port = free_port()
    group = topic_factory("group")
    sink = WebhookSink(
        f"http://127.0.0.1:{port}/notify",
        backoff=Backoff(initial=0.02, maximum=0.1, attempts=2),
    )
    subscriber = subscriber_factory(notify_topic, sink=sink, group=group, retry_backoff=FAST)
    worker = threading.Thread(
        target=subscriber.run, kwargs={"max_delivered": 5, "idle_timeout": 120}
    )
    worker.start()
    try:
        wait_for(lambda: subscriber.metrics.tally["retried"] >= 6, what="retries while down")
        assert committed(kafka_bootstrap, group, notify_topic).get(0, 0) == 0
        assert subscriber.metrics.tally["delivered"] == 0
        with serve(port, statuses=[503, 503, 500]) as hook:  # back, but flaky at first
            worker.join(timeout=120)
            assert not worker.is_alive()
    finally:
        subscriber.stop()
        worker.join()
    assert hook.ids() == [nid for nid, _ in good]
    assert {headers["Idempotency-Key"] for headers, _ in hook.received} == set(hook.ids())
    assert subscriber.metrics.tally["duplicate"] == 1
    assert committed(kafka_bootstrap, group, notify_topic)[0] == 6


def test_a_subscriber_started_before_its_topic_exists_reads_it_once_created(
    federation, kafka_bootstrap, subscriber_factory, topic_factory
):
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    topic = topic_factory("fed.notify")
    received: list[OpenedNotification] = []
    subscriber = subscriber_factory(topic, received=received)
    worker = threading.Thread(target=subscriber.run, kwargs={"max_delivered": 1})
    worker.start()
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        wait_for(lambda: subscriber._next_discovery > 0, what="a look for the topic")
        first = subscriber._next_discovery
        wait_for(lambda: subscriber._next_discovery > first, what="a second look")
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        publish(kafka_bootstrap, topic, [notification_bytes(federation, 1)])
        worker.join(timeout=60)
        assert not worker.is_alive()
    finally:
        subscriber.stop()
        worker.join()
        admin.close()
    assert [n.notification_id for n in received] == [notification_bytes(federation, 1)[0]]


def test_close_from_another_thread_waits_for_the_hand_over_in_hand(
    federation, kafka_bootstrap, notify_topic, subscriber_factory, tmp_path
):
    """Attack round 5: a service stopping its subscriber with ``close()`` from its own
    shutdown thread closed the store and the consumer under a running hand-over; the
    hand-over finished, its commit failed on the closed store, and the notification was
    left in doubt, to be handed over again on the next start."""
    nid, value = notification_bytes(federation, 1)
    publish(kafka_bootstrap, notify_topic, [(nid, value)])
    entered, release = threading.Event(), threading.Event()
    handed: list[str] = []

    def slow(notification: OpenedNotification) -> None:
        entered.set()
        release.wait(30)
        handed.append(notification.notification_id)

    subscriber = subscriber_factory(notify_topic, sink=CallbackSink(slow))
    failures: list[BaseException] = []

    def work() -> None:
        try:
            subscriber.run(idle_timeout=60)
        except BaseException as exc:
            failures.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    closer = threading.Thread(target=subscriber.close)
    try:
        assert entered.wait(60), "the hand-over did not start"
        closer.start()
        closer.join(timeout=1.0)  # close must wait for the hand-over in hand ...
        assert closer.is_alive()
    finally:
        release.set()
        worker.join(timeout=60)
        if closer.ident is not None:
            closer.join(timeout=60)
    assert not worker.is_alive() and not closer.is_alive()  # ... and then both end
    assert failures == [] and handed == [nid]
    store = DeliveryStore(subscriber.settings.store)
    assert store.state(nid) == "delivered"
    store.close()


def test_notifications_deleted_by_kafka_before_they_were_read_are_counted_and_logged(
    federation, kafka_bootstrap, notify_topic, subscriber_factory, topic_factory, caplog
):
    """Attack round 5: a subscriber stopped (or wedged behind a webhook that is down)
    for longer than the topic's retention resumed at an offset Kafka had deleted; the
    client reset it to the earliest one left without a word, so the notifications in
    between were gone and nothing anywhere said so."""
    from kafka import KafkaAdminClient, TopicPartition

    sent = [notification_bytes(federation, n) for n in range(1, 6)]
    publish(kafka_bootstrap, notify_topic, sent[:2])
    group = topic_factory("group")
    received: list[OpenedNotification] = []
    first = subscriber_factory(notify_topic, received=received, group=group)
    first.run(max_delivered=2, idle_timeout=60)
    first.close()
    publish(kafka_bootstrap, notify_topic, sent[2:])  # offsets 2, 3, 4
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.delete_records({TopicPartition(notify_topic, 0): 4})  # retention took 2 and 3
    finally:
        admin.close()

    restarted = subscriber_factory(notify_topic, received=received, group=group)
    with caplog.at_level("ERROR", logger="subscriber"):
        restarted.run(max_delivered=1, idle_timeout=60)
    assert [n.notification_id for n in received] == [nid for nid, _ in (*sent[:2], sent[4])]
    assert restarted.metrics.tally["lost"] == 2
    sample = restarted.metrics.registry.get_sample_value(
        "fedbroker_subscriber_notifications_total", {"outcome": "lost"}
    )
    assert sample == 2
    assert "offsets 2 to 3" in caplog.text and f"{notify_topic}[0]" in caplog.text


def test_a_lost_store_leaves_the_message_at_kafkas_offset_in_doubt_not_handed_over_again(
    federation, kafka_bootstrap, notify_topic, subscriber_factory, topic_factory, tmp_path
):
    """Attack round 5: the store is gone (a careless operator, state not on a volume)
    while the group's committed offset remains, and the last crash fell between the
    store's commit and Kafka's. The subscriber resumed at Kafka's offset and handed the
    message there over again as certain; the JSON Lines sink, never asked, wrote it twice."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    from subscriber import JsonLinesSink

    sent = [notification_bytes(federation, n) for n in range(1, 4)]
    publish(kafka_bootstrap, notify_topic, sent)
    group, out = topic_factory("group"), tmp_path / "out.jsonl"
    first = subscriber_factory(notify_topic, sink=JsonLinesSink(out), group=group,
                               state=tmp_path / "lost")  # fmt: skip
    first.run(max_delivered=2, idle_timeout=60)
    first.close()
    # As if it died after the store's commit of the second and before Kafka's.
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group)
    try:
        consumer.commit({TopicPartition(notify_topic, 0): OffsetAndMetadata(1, "", -1)})
    finally:
        consumer.close()

    again = subscriber_factory(notify_topic, sink=JsonLinesSink(out), group=group,
                               state=tmp_path / "new")  # fmt: skip
    again.run(max_delivered=1, idle_timeout=60)
    ids = [json.loads(line)["notification_id"] for line in out.read_text().splitlines()]
    assert ids == [nid for nid, _ in sent]
    assert again.metrics.tally["duplicate"] == 1


def test_stop_cuts_a_hand_over_to_a_webhook_that_hangs(
    federation, kafka_bootstrap, notify_topic, subscriber_factory
):
    """Attack round 5: with a webhook that accepts and never answers, one hand-over took
    its five tries of ten seconds; SIGTERM waited for all of them, past a container's
    stop grace period, and the SIGKILL that followed counted as a death on the message,
    which a few such restarts set aside (``crashed-repeatedly``) unsent. ``stop`` gives
    the hand-over up (``Retry``, the offset kept) at once."""
    import socket

    nid, value = notification_bytes(federation, 1)
    publish(kafka_bootstrap, notify_topic, [(nid, value)])
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))
    held: list[socket.socket] = []

    def hold() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    acceptor = threading.Thread(target=hold, daemon=True)
    acceptor.start()
    sink = WebhookSink(f"http://127.0.0.1:{port}/notify")  # defaults: 5 tries of 10 s
    subscriber = subscriber_factory(notify_topic, sink=sink)
    worker = threading.Thread(target=subscriber.run, kwargs={"idle_timeout": 120})
    worker.start()
    try:
        wait_for(lambda: held, what="the hand-over to reach the webhook")
        subscriber.stop()
        worker.join(timeout=5)
        assert not worker.is_alive(), "stop waited for the hanging webhook"
    finally:
        listener.close()
        for conn in held:
            conn.close()
        subscriber.stop()
        worker.join(timeout=120)
    assert subscriber.metrics.tally["delivered"] == 0
    assert subscriber.metrics.tally["dead-lettered"] == 0
    assert subscriber.store.state(nid) == "pending"  # in doubt: it may have reached it
    assert subscriber.store.next_offset(notify_topic, 0) is None  # the offset is kept
