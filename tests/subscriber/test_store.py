"""The delivered-id store as careless operators leave it: shared, truncated, corrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from subscriber import DeliveryStore, DeliveryStoreDamaged, DeliveryStoreError


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
    with pytest.raises(DeliveryStoreDamaged) as caught:
        DeliveryStore(path)
    assert caught.value.reason == "store-damaged"


_WRITER = """
import os, signal, sys
from subscriber import DeliveryStore
store = DeliveryStore(sys.argv[1])
for n in range(50):
    store.advance("t", 0, n + 1, delivered=f"ntf-{n}")
os.kill(os.getpid(), signal.SIGKILL)
"""


def _killed_writer(path) -> None:
    """A subscriber's store written by a process that then dies by SIGKILL (no close)."""
    died = subprocess.run(
        [sys.executable, "-c", _WRITER, str(path)], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, check=False,
    )  # fmt: skip
    assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]


def test_a_store_a_crash_truncated_to_nothing_is_refused_not_opened_as_new(tmp_path):
    """A machine that loses power (or a disk that fills up while the file is rewritten)
    can leave the store's file at 0 bytes, its write-ahead log gone. SQLite opens a
    0-byte file as an empty database: the subscriber started afresh and handed every
    notification still on the topic over a second time. Refused, with a reason an
    operator can act on, and the file is left as it was for them."""
    path = tmp_path / "delivered.sqlite"
    _killed_writer(path)
    os.truncate(path, 0)
    for leftover in ("-wal", "-shm"):
        path.with_name(path.name + leftover).unlink(missing_ok=True)
    with pytest.raises(DeliveryStoreDamaged) as caught:
        DeliveryStore(path)
    assert caught.value.reason == "store-damaged"
    assert "docs/subscriber.md" in str(caught.value)
    assert path.stat().st_size == 0  # left for the operator, not made into a new store
    with pytest.raises(DeliveryStoreDamaged):  # and refused again, not "fixed" by the first try
        DeliveryStore(path)


def test_a_store_whose_file_is_gone_but_its_log_remains_is_refused(tmp_path):
    """Only the main file lost: its write-ahead log holds committed ids, and SQLite
    would replay that log into whatever new file took the name."""
    path = tmp_path / "delivered.sqlite"
    _killed_writer(path)
    assert path.with_name(path.name + "-wal").stat().st_size > 0
    path.unlink()
    with pytest.raises(DeliveryStoreDamaged):
        DeliveryStore(path)


def test_a_store_that_was_never_made_is_new_even_after_a_crash_while_making_it(
    tmp_path, monkeypatch
):
    """A store that does not exist is new; one whose making was cut short is not left
    as a 0-byte file that the next start would refuse as damaged."""
    path = tmp_path / "state" / "delivered.sqlite"

    def power_cut(*args: object) -> None:
        raise KeyboardInterrupt  # the process stops here, as a crash would

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", power_cut)
        with pytest.raises(KeyboardInterrupt):
            DeliveryStore(path)
    assert not path.exists()
    store = DeliveryStore(path)
    assert store.delivered_count() == 0 and store.next_offset("t", 0) is None
    store.advance("t", 0, 1, delivered="ntf-0")
    store.close()
    reopened = DeliveryStore(path)
    assert reopened.state("ntf-0") == "delivered"
    reopened.close()


def test_a_subscriber_does_not_start_on_a_truncated_store(federation, tmp_path):
    from subscriber import CallbackSink, Subscriber, SubscriberSettings
    from tests.subscriber.factory import SERVICE

    store = tmp_path / "delivered.sqlite"
    _killed_writer(store)
    os.truncate(store, 0)
    for leftover in ("-wal", "-shm"):
        store.with_name(store.name + leftover).unlink(missing_ok=True)
    settings = SubscriberSettings(
        bootstrap="127.0.0.1:1", service=SERVICE, store=store,
        dead_letters=tmp_path / "dead-letters.jsonl",
    )  # fmt: skip
    with pytest.raises(DeliveryStoreDamaged):
        Subscriber(settings, directory=federation.load(), key=federation.sealing_key(SERVICE),
                   sink=CallbackSink(lambda n: None))  # fmt: skip
    assert store.stat().st_size == 0


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
