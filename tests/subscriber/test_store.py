"""The delivered-id store as careless operators leave it: shared, truncated, corrupted."""

from __future__ import annotations

import pytest

from subscriber import DeliveryStore, DeliveryStoreError


def test_a_second_process_on_the_same_store_is_refused_while_the_first_runs(tmp_path):
    """Attack round 5: two subscribers of one service, say one per ``--agreement``, on
    the default group share its default state folder. Each moved the shared offsets past
    the other's notifications (``skipped``), so each lost the other's for good, and
    nothing said so. One store, one process: the second is refused."""
    path = tmp_path / "delivered.sqlite"
    running = DeliveryStore(path)
    with pytest.raises(DeliveryStoreError) as caught:
        DeliveryStore(path)
    assert caught.value.reason == "store-in-use"
    running.close()
    DeliveryStore(path).close()  # free again once the first has stopped


@pytest.mark.parametrize("damage", ["garbage", "half"])
def test_a_damaged_store_is_a_typed_error_not_a_fresh_start(tmp_path, damage):
    path = tmp_path / "delivered.sqlite"
    store = DeliveryStore(path)
    for n in range(300):
        store.advance("t", 0, n + 1, delivered=f"ntf-{n}")
    store.close()
    data = path.read_bytes()
    path.write_bytes(b"x" * len(data) if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(DeliveryStoreError) as caught:
        DeliveryStore(path)
    assert caught.value.reason == "store-failed"


def test_a_subscriber_that_fails_to_start_lets_go_of_its_store(federation, tmp_path):
    """The store's lock must not outlive a start that failed after taking it (here the
    dead-letter file cannot be made), or the retry that follows is refused as in use."""
    from subscriber import CallbackSink, Subscriber, SubscriberSettings
    from tests.subscriber.factory import SERVICE

    blocked = tmp_path / "dead-letters.jsonl"
    blocked.mkdir()  # a careless operator's folder where the file should be
    settings = SubscriberSettings(
        bootstrap="127.0.0.1:1", service=SERVICE, store=tmp_path / "delivered.sqlite",
        dead_letters=blocked,
    )  # fmt: skip
    with pytest.raises(DeliveryStoreError) as caught:
        Subscriber(settings, directory=federation.load(), key=federation.sealing_key(SERVICE),
                   sink=CallbackSink(lambda n: None))  # fmt: skip
    assert caught.value.reason == "store-failed"
    DeliveryStore(settings.store).close()  # while the failure is still in hand
