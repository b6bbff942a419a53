"""A notification re-delivered, at another offset, partition or after a restart, is handed
over once (DESIGN section 10: "a service is never handed the same notification id twice").

The broker's retries, a rebalance or an operator resetting offsets all put the same
signed bytes in front of the subscriber again; only the delivered-id store stops them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from subscriber import (
    CallbackSink,
    DeadLetterFile,
    Delivery,
    DeliveryStore,
    Place,
    SubscriberMetrics,
    SubscriberSettings,
)
from tests.subscriber.factory import SERVICE, notification_bytes

TOPIC = f"fed.notify.{SERVICE}"


def test_the_same_notification_again_is_a_duplicate_even_after_a_restart(federation, tmp_path):
    settings = SubscriberSettings(bootstrap="unused:9092", service=SERVICE,
                                  store=tmp_path / "store.sqlite",
                                  dead_letters=tmp_path / "dead.jsonl")  # fmt: skip
    handed: list[str] = []
    stores: list[DeliveryStore] = []

    def delivery() -> Delivery:
        stores.append(DeliveryStore(settings.store))
        return Delivery(settings, directory=federation.load(),
                        key=federation.sealing_key(SERVICE),
                        sink=CallbackSink(lambda n: handed.append(n.notification_id)),
                        store=stores[-1], dead_letters=DeadLetterFile(settings.dead_letters),
                        metrics=SubscriberMetrics())  # fmt: skip

    nid, value = notification_bytes(federation, 1)
    first = delivery()
    assert first.handle(Place(TOPIC, 0, 5), value) == "delivered"
    assert first.handle(Place(TOPIC, 0, 9), value) == "duplicate"
    assert first.handle(Place(TOPIC, 1, 0), value) == "duplicate"
    stores[0].close()  # the first process ends ...
    restarted = delivery()  # ... and a new one starts on the same store
    assert restarted.handle(Place(TOPIC, 0, 5), value, first=True) == "duplicate"
    assert restarted.handle(Place(TOPIC, 2, 77), value) == "duplicate"
    assert handed == [nid]
    assert not (tmp_path / "dead.jsonl").exists() or not (tmp_path / "dead.jsonl").read_text()


def test_a_notification_older_than_the_ids_are_remembered_is_refused_not_handed_over_again(
    federation, tmp_path
):
    """Attack round 5: an id is forgotten after ``DEFAULT_RETENTION_SECONDS``; a signed
    notification kept since and put back on the topic (a replay, a restored backup of
    the topic) was handed over a second time. It is refused as ``expired`` (and one
    dated beyond any clock skew as ``future-dated``: it would outlive its id)."""
    settings = SubscriberSettings(bootstrap="unused:9092", service=SERVICE,
                                  store=tmp_path / "store.sqlite",
                                  dead_letters=tmp_path / "dead.jsonl")  # fmt: skip
    handed: list[str] = []
    dead = DeadLetterFile(settings.dead_letters)
    delivery = Delivery(settings, directory=federation.load(),
                        key=federation.sealing_key(SERVICE),
                        sink=CallbackSink(lambda n: handed.append(n.notification_id)),
                        store=DeliveryStore(settings.store), dead_letters=dead,
                        metrics=SubscriberMetrics())  # fmt: skip
    now = datetime.now(UTC)
    _, replayed = notification_bytes(federation, 1, created_at=now - timedelta(days=401))
    _, future = notification_bytes(federation, 2, created_at=now + timedelta(days=30))
    fresh_id, fresh = notification_bytes(federation, 3, created_at=now - timedelta(days=30))
    assert delivery.handle(Place(TOPIC, 0, 0), replayed) == "dead-lettered"
    assert delivery.handle(Place(TOPIC, 0, 1), future) == "dead-lettered"
    assert delivery.handle(Place(TOPIC, 0, 2), fresh) == "delivered"
    assert handed == [fresh_id]
    assert [(d.reason, d.offset) for d in dead.read()] == [("expired", 0), ("future-dated", 1)]


def test_a_short_retention_still_hands_over_fresh_notifications(federation, tmp_path):
    """The day allowed for clock skew must not swallow a retention shorter than a day."""
    settings = SubscriberSettings(bootstrap="unused:9092", service=SERVICE,
                                  store=tmp_path / "store.sqlite",
                                  dead_letters=tmp_path / "dead.jsonl")  # fmt: skip
    handed: list[str] = []
    delivery = Delivery(settings, directory=federation.load(),
                        key=federation.sealing_key(SERVICE),
                        sink=CallbackSink(lambda n: handed.append(n.notification_id)),
                        store=DeliveryStore(settings.store, retention_seconds=3600),
                        dead_letters=DeadLetterFile(settings.dead_letters),
                        metrics=SubscriberMetrics())  # fmt: skip
    nid, value = notification_bytes(federation, 1)
    _, old = notification_bytes(federation, 2, created_at=datetime.now(UTC) - timedelta(hours=2))
    assert delivery.handle(Place(TOPIC, 0, 0), value) == "delivered"
    assert delivery.handle(Place(TOPIC, 0, 1), old) == "dead-lettered"
    assert handed == [nid]
