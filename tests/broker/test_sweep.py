"""The retention sweep's pure part: what a sweep at a given time takes from a token.

A token no event touches again must still lose its expired sightings (and
their rows) and the ids past their window, exactly as a later event would
have removed them. These tests drive the sweep over plain dicts standing for
the token-state table (tokens and rows in one table, as in the app); the same
through real Kafka is ``test_sweep_e2e.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest

from broker import Matcher, Sighting, TokenState
from broker._partition import PartitionCore, retention_for
from broker._sightings import Seen
from broker._state_cache import StateBatch, StateCache
from broker._sweep import MemoryKeyScan, Sweeper, still_empty, sweep_state
from consent import AuditChain, ChainHead, build_dev_federation
from tests.broker.conftest import T0
from tests.broker.test_partition import FROM, NOW, TO, _event
from tests.broker.test_state_cache import Table

DAY = timedelta(days=1)


@pytest.fixture
def make(sighting_factory: Callable[..., Sighting]) -> Callable[..., Sighting]:
    def sighting(n: int, expires_in: timedelta, tokens: tuple[str, ...] = (),
                 blocking: tuple[str, ...] = ()) -> Sighting:  # fmt: skip
        return sighting_factory(f"ev-{n}", fuzzy=bytes([n]) * 64, expires_at=T0 + expires_in,
                                tokens=tokens, blocking=blocking)  # fmt: skip

    return sighting


def test_a_sweep_drops_what_has_expired_at_its_time_and_nothing_else(make):
    old, young = make(1, DAY), make(2, 3 * DAY)
    seen_old, seen_young = Seen("ev-1", "t/0/1", T0 + 2 * DAY), Seen("ev-2", "t/0/2", T0 + 4 * DAY)
    state = TokenState((old, young), (seen_old, seen_young))

    before = sweep_state(state, T0)
    assert before.state is state and not before.changed

    at_expiry = sweep_state(state, T0 + DAY)  # expires_at is the first instant it is gone
    assert at_expiry.state == TokenState((young,), (seen_old, seen_young))
    assert (at_expiry.sightings, at_expiry.seen) == (1, 0)

    later = sweep_state(state, T0 + 2 * DAY)  # a seen id is forgotten once its window ends
    assert later.state == TokenState((young,), (seen_young,))
    assert (later.sightings, later.seen) == (1, 1)

    # what the hot path's next event would have met: the same live state
    assert later.state == state.live(T0 + 2 * DAY)
    assert sweep_state(state, T0 + 5 * DAY).state == TokenState()


def _stored(make, table: dict[str, bytes | None]) -> tuple[Sighting, Sighting, Sighting]:
    """Tokens of one partition: three share an expiring event, one holds only old things."""
    shared = make(1, DAY, ("nhs:1:aa",), ("blk:1:bb", "blk:1:dd"))
    live, lonely = make(2, 30 * DAY, ("nhs:1:aa",)), make(3, DAY, ("nhs:1:cc",))
    batch = StateBatch(table, StateCache(), 0)
    batch.set("nhs:1:aa", TokenState((shared, live), (Seen("ev-2", "t/0/2", T0 + 30 * DAY),)))
    batch.set("blk:1:bb", TokenState((shared,), (Seen("ev-1", "t/0/1", T0 + 30 * DAY),)))
    batch.set("nhs:1:cc", TokenState((lonely,), (Seen("ev-3", "t/0/3", T0 + 2 * DAY),)))
    batch.set("blk:1:dd", TokenState((shared,)))
    batch.flush()
    return shared, live, lonely


def _sweep(table, cache, sweeper, now) -> tuple[int, int, list[str]]:
    """One tick's sweep as the match agent runs it: sweep, drop what emptied, flush."""
    batch = StateBatch(table, cache, 0)
    report = sweeper.sweep(batch, table, now)
    emptied = still_empty(batch, report.emptied)
    for token in emptied:
        batch.drop(token)
    batch.flush()
    return report.sightings, report.seen, emptied


def _rows(table) -> list[str]:
    return sorted(k.split("/")[0] for k in table if "/" in k)


def test_untouched_tokens_lose_expired_sightings_their_rows_and_then_themselves(make):
    table = Table()  # counts writes and deletes, as a changelog would see them
    shared, live, _ = _stored(make, table)
    assert _rows(table) == ["ev-1", "ev-2", "ev-3"]
    cache = StateCache()
    sweeper = Sweeper(MemoryKeyScan(table, partitions=1), 1, keys=1000)

    written = (table.writes, table.deletes)
    assert _sweep(table, cache, sweeper, T0 + DAY / 2) == (0, 0, [])  # nothing expired yet
    assert (table.writes, table.deletes) == written, "a sweep with nothing to drop writes nothing"
    assert _sweep(table, StateCache(), sweeper, T0 + DAY / 2) == (0, 0, [])  # nor when restarted
    assert (table.writes, table.deletes) == written

    # a token left with nothing (no sighting, no id in its window) goes whole
    assert _sweep(table, cache, sweeper, T0 + DAY) == (4, 0, ["blk:1:dd"])
    assert _rows(table) == ["ev-2"]
    fresh = StateBatch(table, StateCache(), 0)  # as a restarted worker reads it
    assert fresh.get("nhs:1:aa") == TokenState((live,), (Seen("ev-2", "t/0/2", T0 + 30 * DAY),))
    assert fresh.get("blk:1:bb") == TokenState((), (Seen("ev-1", "t/0/1", T0 + 30 * DAY),))
    assert fresh.get("blk:1:dd") is None
    assert fresh.get("nhs:1:cc") == TokenState((), (Seen("ev-3", "t/0/3", T0 + 2 * DAY),))
    assert b"ev-1" not in (table["nhs:1:aa"] or b"")

    # the seen id outlives the sighting, then goes, and its token with it
    assert _sweep(table, cache, sweeper, T0 + 2 * DAY) == (0, 1, ["nhs:1:cc"])
    assert sorted(k for k in table if "/" not in k) == ["blk:1:bb", "nhs:1:aa"]
    assert shared.event_id not in (table["nhs:1:aa"] or b"").decode()


@dataclass
class Only:
    """A scan that hands out the given slices of keys, one per call."""

    slices: list[list[str]]

    def next_keys(self, partition: int, limit: int) -> list[str]:
        return self.slices.pop(0)


def test_a_token_naming_a_row_another_token_swept_is_rewritten(make):
    table: dict[str, bytes | None] = {}
    _stored(make, table)
    cache = StateCache()
    sweeper = Sweeper(Only([["nhs:1:aa"], ["blk:1:bb"]]), 1)
    # the first token's sweep deletes the shared row; the other token still names it
    assert _sweep(table, cache, sweeper, T0 + DAY)[0] == 1
    assert b"ev-1/" in (table["blk:1:bb"] or b"") and _rows(table) == ["ev-2", "ev-3"]
    assert _sweep(table, cache, sweeper, T0 + DAY)[:2] == (0, 0)  # nothing left to expire...
    # it decodes without the sighting; its stored references are rewritten without it
    assert b"ev-1/" not in (table["blk:1:bb"] or b"") and b'"ev-1"' in (table["blk:1:bb"] or b"")


def test_a_slice_is_bounded_and_a_pass_starts_again_at_its_end():
    keys = {f"nhs:1:{n:02x}": b"[]" for n in range(10)} | {"ev/ab/0": b"[]", "ev/ab/1": b"[]"}
    scan = MemoryKeyScan(keys, partitions=1)
    slices = [scan.next_keys(0, 4) for _ in range(4)]
    assert [len(s) for s in slices] == [4, 4, 3, 4]  # another partition's row: examined only
    assert set(slices[0] + slices[1] + slices[2]) == set(keys) - {"ev/ab/1"}
    other = MemoryKeyScan(keys, partitions=2)
    mine = [k for _ in range(3) for k in other.next_keys(0, 4)]
    theirs = [k for _ in range(3) for k in other.next_keys(1, 4)]
    assert not set(mine) & set(theirs) and len(set(mine) | set(theirs)) == 12
    assert "ev/ab/0" in mine and "ev/ab/1" in theirs


def test_a_swept_sighting_changes_no_decision_notification_or_audit_record(tmp_path):
    """Swept an hour before the next event, or expired by that event itself: the same."""
    federation = build_dev_federation(tmp_path / "fed", councils=[FROM, TO], now=NOW)
    directory = federation.load(NOW)
    key = federation.signing_key("broker")

    def sighting(event):
        return Sighting.from_event(event, retention=retention_for(directory, event))

    # the same person: an event that expired yesterday, one still kept, and a new one
    expired = replace(sighting(_event(federation, FROM, "B", "2026-08-01", "a-0")),
                      expires_at=NOW - DAY)  # fmt: skip
    kept = sighting(_event(federation, FROM, "C", "2026-09-01", "a-1"))
    arriving = sighting(_event(federation, TO, "M", "2026-09-04", "b-7"))
    token = min(kept.tokens)
    held = TokenState((expired, kept), (Seen(expired.event_id, "t/0/1", NOW - DAY),))

    def run(state):
        chain = AuditChain(ChainHead("test/0"), key)
        core = PartitionCore(directory, Matcher(), key)
        return core.on_sighting(token, arriving, state, None, chain, NOW, origin="t/0/9",
                                seen_until=NOW + 30 * DAY)  # fmt: skip

    expired_by_event, by_event = run(held)
    swept = sweep_state(held, NOW - timedelta(hours=1))
    assert (swept.sightings, swept.seen) == (1, 1)
    expired_by_sweep, by_sweep = run(swept.state)
    assert by_event.notifications and by_event.notifications == by_sweep.notifications
    assert [a.record_hash for a in by_event.audit] == [a.record_hash for a in by_sweep.audit]
    assert by_event.decisions == by_sweep.decisions
    assert [m.pair_id for m in by_event.matches] == [m.pair_id for m in by_sweep.matches]
    assert expired_by_event == expired_by_sweep
    # kept, the old event would have been matched too: what is compared is not trivially equal
    _, if_kept = run(TokenState((replace(expired, expires_at=None), kept)))
    assert len(if_kept.matches) > len(by_event.matches)


def test_a_state_left_empty_by_a_crash_or_naming_only_deleted_rows_is_deleted(make):
    table: dict[str, bytes | None] = {}
    _stored(make, table)
    # a worker killed between the emptied state's write and its deletion left "[]";
    # another token names only a row that is gone (its event dropped elsewhere)
    table["nhs:1:ee"] = b"[]"
    table["blk:1:ff"] = b'[["ev-9/00112233aabbccdd"]]'
    sweeper = Sweeper(Only([["nhs:1:ee", "blk:1:ff", "nhs:1:aa"]]), 1)
    assert _sweep(table, StateCache(), sweeper, T0) == (0, 0, ["nhs:1:ee", "blk:1:ff"])
    assert "nhs:1:ee" not in table and "blk:1:ff" not in table and "nhs:1:aa" in table


def test_a_state_that_does_not_decode_is_left_counted_and_the_slice_goes_on(make, caplog):
    table: dict[str, bytes | None] = {}
    _stored(make, table)
    table["nhs:1:bad"] = b"{not a list"
    sweeper = Sweeper(Only([["nhs:1:bad", "blk:1:dd"]]), 1)
    batch = StateBatch(table, StateCache(), 0)
    report = sweeper.sweep(batch, table, T0 + DAY)
    assert (report.invalid, report.sightings, report.emptied) == (1, 1, ["blk:1:dd"])
    batch.flush()
    assert table["nhs:1:bad"] == b"{not a list", "never the sweep's to drop"
    assert "does not decode" in caplog.text
    assert "nhs:1:bad" not in caplog.text  # the log names the partition, never the token


def test_a_row_no_state_names_is_deleted_and_an_expired_one_too(make):
    """A worker killed after a batch's rows but before its states leaves a row nobody names.

    Redelivered, its event may no longer be kept (expired by then, or its
    subject erased meanwhile): the row, sealed payloads and all, would stay
    for ever. The sweep deletes such a row, and an expired row whoever names
    it, and never a live row a token of the partition names.
    """
    table = Table()
    _, live, _ = _stored(make, table)
    cache = StateCache()
    for sighting in (make(7, 30 * DAY, ("nhs:1:aa",)), make(8, DAY, ("nhs:1:ee",))):
        key, row = cache.keyed(sighting)  # the killed worker's rows, and no state
        table[f"{key}/0"] = row
    sweeper = Sweeper(MemoryKeyScan(table, partitions=1), 1, keys=1000)

    batch = StateBatch(table, StateCache(), 0)
    report = sweeper.sweep(batch, table, T0)
    batch.flush()
    assert report.rows == 2 and _rows(table) == ["ev-1", "ev-2", "ev-3"]
    assert not report.sightings and not report.emptied, "no token lost anything"

    shared_row = next(k for k in table if k.startswith("ev-1/"))
    batch = StateBatch(table, StateCache(), 0)
    report = Sweeper(Only([[shared_row]]), 1).sweep(batch, table, T0 + DAY)  # the row alone
    batch.flush()
    assert report.rows == 1 and _rows(table) == ["ev-2", "ev-3"]
    assert b"ev-1/" in (table["nhs:1:aa"] or b""), "still named, as after another's expiry"
    fresh = StateBatch(table, StateCache(), 0)
    assert fresh.get("nhs:1:aa") == TokenState((live,), (Seen("ev-2", "t/0/2", T0 + 30 * DAY),))
