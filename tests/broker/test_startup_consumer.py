"""The start-up stall's two upstream faults, shown on Faust's own code and fixed in ours.

Each test drives the method on a stand-in consumer: the faust-streaming 0.15.3
method shows the fault (so the test would fail on the old code), the
``StallFreeConsumer`` one must not have it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from aiokafka import TopicPartition as AioTP
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP
from intervaltree import IntervalTree

from broker._consumer import StallFreeConsumer, uncommitted
from broker._fetches import Fetches
from broker._read_heads import MAX_REREADS, ReadHeads

EVENTS = TP("fed.events.E08000001", 0)


class _Monitor:
    def __init__(self) -> None:
        self.commits: list[dict[TP, int]] = []

    def on_tp_commit(self, offsets: dict[TP, int]) -> None:
        self.commits.append(dict(offsets))


class _Stand:
    """Just what ``_commit_offsets`` and ``perform_seek`` touch on a consumer."""

    def __init__(self, *, accepted: bool, committed: dict[Any, int | None] | None = None):
        self.accepted, self.in_transaction = accepted, False
        self._committed_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)
        self._read_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)
        self.heads: ReadHeads[TP] = ReadHeads()
        self.fetches, self.flow_active = Fetches(), True
        self.sought_while_flowing: list[bool] = []
        self.flow_stopped = asyncio.Event()
        self.earliest: dict[TP, int] = {}
        self.sought_to_beginning: list[Any] = []
        self.log = _Log()
        monitor, flushed, on_commit = _Monitor(), [], []
        self.monitor = monitor

        class _App:
            class conf:  # noqa: N801 - the shape of faust's app.conf
                consumer_auto_offset_reset = "earliest"

            class producer:  # noqa: N801
                @staticmethod
                async def flush() -> None:
                    flushed.append(1)

            class tables:  # noqa: N801
                changelog_topics: frozenset[str] = frozenset()

                @staticmethod
                def on_commit(offsets: dict[TP, int]) -> None:
                    on_commit.append(offsets)

        _App.monitor = monitor  # type: ignore[attr-defined]
        self.app = _App
        stand = self

        class _Thread:
            async def seek_to_beginning(self, *partitions: Any) -> None:
                stand.sought_to_beginning.extend(partitions)

        self._thread = _Thread()
        self._committed_map = committed or {}

    def assignment(self) -> set[TP]:
        return {EVENTS}

    async def _commit(self, offsets: dict[TP, int]) -> bool:
        return self.accepted  # False: Kafka refused (UnknownMemberId during a rebalance)

    def stop_flow(self) -> None:
        self.flow_active = False
        self.flow_stopped.set()

    async def seek_to_committed(self) -> dict[Any, int | None]:
        self.sought_while_flowing.append(self.flow_active)
        return self._committed_map

    async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
        return {tp: self.earliest.get(tp, 0) for tp in partitions}


class _Log:
    def dev(self, *args: Any) -> None:
        pass

    def info(self, *args: Any) -> None:
        pass


def _commit(method: Any, stand: _Stand) -> bool:
    return asyncio.run(method(stand, {EVENTS: 7}))


def test_upstream_records_a_refused_commit_as_committed_faust_316():
    stand = _Stand(accepted=False)
    assert _commit(FaustConsumer._commit_offsets, stand) is False
    assert stand._committed_offset[EVENTS] == 7  # the fault: Kafka holds nothing


def test_a_refused_commit_leaves_the_offset_uncommitted_and_uncounted():
    stand = _Stand(accepted=False)
    assert _commit(StallFreeConsumer._commit_offsets, stand) is False
    assert stand._committed_offset[EVENTS] is None
    assert stand.monitor.commits == []


def test_an_accepted_commit_is_recorded_and_counted():
    stand = _Stand(accepted=True)
    assert _commit(StallFreeConsumer._commit_offsets, stand) is True
    assert stand._committed_offset[EVENTS] == 7
    assert stand.monitor.commits == [{EVENTS: 7}]


def test_a_commit_for_a_revoked_partition_is_not_sent():
    stand = _Stand(accepted=True)
    gone = TP("fed.events.E08000001", 1)
    assert asyncio.run(StallFreeConsumer._commit_offsets(stand, {gone: 3})) is False
    assert gone not in stand._committed_offset


def test_upstream_seek_keeps_a_stale_offset_for_a_never_committed_partition_aiokafka_1003():
    stand = _Stand(accepted=True, committed={AioTP(EVENTS.topic, 0): None})
    stand._committed_offset[EVENTS] = 7  # left by a refused commit (faust-streaming#316)
    asyncio.run(FaustConsumer.perform_seek(stand))
    assert stand._committed_offset[EVENTS] == 7  # acks below 7 are then ignored


def test_a_never_committed_partition_is_read_again_from_its_start():
    stale = AioTP(EVENTS.topic, 0)
    kept = AioTP(EVENTS.topic, 1)
    stand = _Stand(accepted=True, committed={stale: None, kept: 4})
    stand._committed_offset[EVENTS] = 7
    stand._read_offset[EVENTS] = 9  # past records a paused fetch dropped
    asyncio.run(StallFreeConsumer.perform_seek(stand))
    assert stand.sought_to_beginning == [stale]
    assert stand._committed_offset[EVENTS] is None
    assert stand._read_offset[EVENTS] is None
    assert stand._committed_offset[TP(EVENTS.topic, 1)] == 4
    assert stand._read_offset[TP(EVENTS.topic, 1)] == 4


def test_uncommitted_means_absent_or_zero():
    assert uncommitted({"a": None, "b": 0, "c": 5}) == ["a", "b"]


def test_the_workers_producer_is_idempotent_outside_transactions_too():
    """A retried send after a leader failover must not write a record twice (issue 13 item 5)."""
    from faust.transport.drivers import aiokafka as faust_aiokafka

    from broker._consumer import StallFreeApp

    app = StallFreeApp("idempotence-check", broker="kafka://127.0.0.1:9")
    extra = app.producer._settings_extra()  # noqa: SLF001 - what aiokafka is given
    assert extra["enable_idempotence"] is True
    assert extra["acks"] == "all"
    plain = faust_aiokafka.Producer(faust_aiokafka.Transport(["kafka://127.0.0.1:9"], app))
    assert "enable_idempotence" not in plain._settings_extra(), "Faust's own default changed"  # noqa: SLF001


class _Offsets(StallFreeConsumer):
    """A consumer holding only the ack bookkeeping ``_new_offset`` reads."""

    def __init__(self, committed: int | None, acked: list[int]) -> None:  # no Faust service set-up
        self._read_offset = defaultdict(lambda: None)
        self._commit_fut = None
        self._committed_offset = defaultdict(lambda: None, {EVENTS: committed})
        self._acked = defaultdict(list, {EVENTS: list(acked)})
        self._acked_index = defaultdict(set, {EVENTS: set(acked)})
        self._gap = defaultdict(IntervalTree)
        if committed is not None:
            self.heads.sought(EVENTS, committed)


def test_upstream_commits_over_a_hole_of_one_message():
    """Offset 5 was dropped after a seek; faust 0.15.3 commits 8 and 5 is never read."""
    stand = _Offsets(committed=5, acked=[6, 7])
    assert FaustConsumer._new_offset(stand, EVENTS) == 8


def test_a_hole_at_the_head_is_never_committed_over():
    assert _Offsets(committed=5, acked=[6, 7])._new_offset(EVENTS) is None
    assert _Offsets(committed=5, acked=[5, 6, 7])._new_offset(EVENTS) == 8


def test_the_head_of_a_sought_partition_is_recognised_once():
    heads: ReadHeads[str] = ReadHeads()
    heads.sought("p", 5)
    assert heads.awaited("p") == 5
    assert [o for o in (7, 8, 5, 6, 5) if heads.arrived("p", o)] == [5]
    assert heads.awaited("p") is None


def test_acks_above_the_committed_offset_send_the_partition_back_to_it():
    heads: ReadHeads[str] = ReadHeads()
    assert heads.skipped("p", [6]) is None  # nothing known: Faust's own rule
    heads.sought("p", 5)
    assert heads.skipped("p", [6, 7]) == 5
    assert heads.skipped("p", [5, 6]) is None
    assert heads.skipped("p", []) is None
    heads.committed("p", 8)
    assert heads.skipped("p", [9]) == 8
    heads.forget(["p"])
    assert heads.skipped("p", [9]) is None and heads.awaited("p") is None


def test_each_input_partitions_head_is_its_committed_offset_or_the_logs_start():
    stale, kept, trimmed = (AioTP(EVENTS.topic, n) for n in range(3))
    stand = _Stand(accepted=True, committed={stale: None, kept: 4, trimmed: 2})
    stand.earliest = {TP(EVENTS.topic, 0): 0, TP(EVENTS.topic, 2): 9}
    asyncio.run(StallFreeConsumer.perform_seek(stand))
    assert [stand.heads.awaited(TP(EVENTS.topic, n)) for n in range(3)] == [None, 4, 9]
    assert stand.heads.skipped(TP(EVENTS.topic, 0), [3]) == 0  # a reset may land on a later commit


def test_upstream_counts_offsets_it_never_saw_as_done():
    """Records 6 and 7 lost between fetch and agent: Faust fills the jump from 5 to 8."""
    stand = _Offsets(committed=5, acked=[5, 8])
    asyncio.run(FaustConsumer._add_gap(stand, EVENTS, 6, 7))
    assert FaustConsumer._new_offset(stand, EVENTS) == 9  # 6 and 7 never processed


def test_a_jump_in_offsets_stays_a_hole_that_is_read_again():
    stand = _Offsets(committed=5, acked=[5, 8])
    asyncio.run(stand._add_gap(EVENTS, 6, 7))
    assert stand._new_offset(EVENTS) == 6  # 5 is done; 6 and 7 are not
    stand.heads.committed(EVENTS, 6)
    assert stand.heads.skipped(EVENTS, stand._acked[EVENTS]) == 6


def test_a_hole_is_read_again_a_bounded_number_of_times():
    heads: ReadHeads[str] = ReadHeads()
    assert all(heads.reread("p", 6) for _ in range(MAX_REREADS))
    assert not heads.reread("p", 6)  # offsets that hold no record: passed over
    assert heads.reread("p", 9), "a new hole starts a new count"


def test_a_seek_during_another_rebalance_sets_no_heads_and_does_not_crash_the_worker():
    from aiokafka.errors import KafkaTimeoutError

    stand = _Stand(accepted=True, committed={AioTP(EVENTS.topic, 0): 4})

    async def unknown(*partitions: TP) -> dict[TP, int]:
        raise KafkaTimeoutError()

    stand.earliest_offsets = unknown  # type: ignore[method-assign]
    asyncio.run(StallFreeConsumer.perform_seek(stand))
    assert stand.heads.awaited(EVENTS) is None
    assert stand._committed_offset[EVENTS] == 4


class _Record:
    def __init__(self, offset: int) -> None:
        self.offset = offset


def test_records_already_done_are_not_handed_out_again_when_read_again(monkeypatch):
    """Read again from a hole at 5: 6 and 7 were processed (acked), so only 5 and 8 are redone."""

    async def fetched(self: Any, timeout: float) -> Any:  # Faust's fetch after the seek to 5
        for offset in (5, 6, 7, 8):
            yield EVENTS, _Record(offset)

    monkeypatch.setattr(FaustConsumer, "getmany", fetched)
    stand = _Offsets(committed=5, acked=[6, 7])

    async def handed_out() -> list[int]:
        return [message.offset async for _, message in stand.getmany(timeout=1.0)]

    assert asyncio.run(handed_out()) == [5, 8]
    assert stand._new_offset(EVENTS) is None, "the hole at 5 still holds the commit back"


def test_acks_are_committed_before_faust_forgets_a_revoked_partition(monkeypatch):
    """faust-streaming clears a revoked partition's acks before its own last commit."""
    stand = _Offsets(committed=5, acked=[5, 6, 7])
    seen: list[str] = []

    async def commit(*args: Any, **kwargs: Any) -> bool:
        seen.append(f"commit {stand._new_offset(EVENTS)}")
        return True

    async def upstream(self: Any, revoked: set[TP]) -> None:
        seen.append("forget")
        for tp in revoked:
            self._acked.pop(tp, None)

    stand.commit = commit  # type: ignore[method-assign]
    monkeypatch.setattr(FaustConsumer, "on_partitions_revoked", upstream)
    asyncio.run(stand.on_partitions_revoked({EVENTS}))
    assert seen == ["commit 8", "forget"]


def test_the_seek_waits_for_the_fetch_under_way_with_the_flow_stopped():
    """A record fetched after the seek and handed out before Faust clears the queues is lost."""
    stand = _Stand(accepted=True, committed={AioTP(EVENTS.topic, 0): 4})

    async def seek_during_a_fetch() -> list[str]:
        order: list[str] = []
        with stand.fetches.one():
            seeking = asyncio.ensure_future(StallFreeConsumer.perform_seek(stand))
            # The seek has stopped the flow and now waits on the fetch (or has sought).
            await asyncio.wait_for(stand.flow_stopped.wait(), timeout=5)
            order.append(f"fetch ends, sought {len(stand.sought_while_flowing)}")
        await seeking
        order.append(f"sought {len(stand.sought_while_flowing)}")
        return order

    assert asyncio.run(seek_during_a_fetch()) == ["fetch ends, sought 0", "sought 1"]
    assert stand.sought_while_flowing == [False]


def test_a_fetch_that_never_ends_holds_the_seek_back_only_until_the_timeout():
    fetches = Fetches()

    async def wait_on_a_stuck_fetch() -> bool:
        with fetches.one():
            return await fetches.done(timeout=0.01)

    assert asyncio.run(wait_on_a_stuck_fetch()) is False
    assert asyncio.run(fetches.done(timeout=0.01)) is True
