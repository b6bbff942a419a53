"""The retention sweep: expired sightings and seen ids leave tokens nobody touches again.

A token's state is brought to ``TokenState.live(now)`` only when a later event
or consent record is routed by that token. A token never routed by again
(a person who moved away, a blocking key no one else shares) kept its expired
sightings, their rows (personal data: sealed payloads, encodings) and its
seen ids for ever, against the promise that a sighting is kept only as long
as the longest retention of the agreements that use it (``docs/broker.md``).

The sweep applies that same ``live(now)`` to every token of a partition,
a bounded slice at a time. It runs inside the partition's checkpoint tick, a
routed message handled by the ``match`` agent like any other, so:

- it is ordered with the partition's batches and never sees one half done;
- its table writes go to the tick's changelog partition, which is the
  partition whose tokens it sweeps (Faust writes where the message being
  handled was read);
- its changes go through the tick's ``StateBatch``: rows and their deletions
  queued before states, caches told what was deleted (``StateBatch.flush``).
  A token left with nothing (no live sighting, no id within its window) is
  then deleted whole, after the batch's writes, in the same changelog
  partition: a worker killed in between leaves an empty state, which the
  next pass deletes.

A Faust timer could not carry it: a table written outside a message has no
changelog partition to write to, and a timer runs between a batch's items.

What it removes is exactly what the next event under the token would have
removed at the same time (the same function), so decisions, audit records
and notifications are unchanged.

Each tick examines at most ``keys`` table keys of the partition from a cursor
(``KeyScan``), so no tick stalls the partition however large its table; a
pass over a partition of K keys takes K / ``keys`` ticks, then starts again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from faust.exceptions import KeyDecodeError
from faust.stores.memory import Store as MemoryStore
from faust.stores.rocksdb import Store as RocksStore

from broker._errors import StateInvalid
from broker._routed import partition_for
from broker._sightings import TokenState
from broker._state_cache import StateBatch, decode_state

__all__ = [
    "DEFAULT_SWEEP_KEYS",
    "KeyScan",
    "MemoryKeyScan",
    "RocksKeyScan",
    "SweepReport",
    "Sweeper",
    "Swept",
    "is_empty",
    "key_scan",
    "still_empty",
    "sweep_state",
]

logger = logging.getLogger(__name__)

#: Table keys (token states and sighting rows) examined per partition per tick.
#: A token whose sightings are cached costs tens of microseconds, one whose
#: rows must be read and decoded about a millisecond at most, so a tick stays
#: far inside the 250 ms latency budget; at one tick per 20 s (the default
#: checkpoint interval's third) a partition of a million keys is swept in a day,
#: well inside the shortest retention and the 30-day freshness window.
DEFAULT_SWEEP_KEYS = 256


def _is_token(key: str) -> bool:
    """A token's key (``domain:epoch:hex``), not a sighting's row (``event/digest/partition``).

    A row key always holds a ``/`` after its last ``:`` (``broker/_state_cache.py``).
    """
    return "/" not in key.rsplit(":", 1)[-1]


def _row_of(key: str, partition: int) -> str | None:
    """The row's reference (``event_id/digest``) if ``key`` is a row of ``partition``."""
    if _is_token(key):
        return None
    reference, _, at = key.rpartition("/")
    return reference if at == str(partition) else None


def is_empty(state: TokenState | None) -> bool:
    """Whether a state holds nothing worth its key: no sighting, no id still in its window."""
    return state is not None and not state.sightings and not state.seen


@dataclass(frozen=True, slots=True)
class Swept:
    """A token's state after a sweep at one time, and what the sweep took from it."""

    state: TokenState
    sightings: int
    seen: int

    @property
    def changed(self) -> bool:
        return bool(self.sightings or self.seen)


def sweep_state(state: TokenState, now: datetime) -> Swept:
    """``state`` without what has expired at ``now``: what a later event would have dropped.

    The pure part of the sweep: the hot path's own ``TokenState.live``, so the
    two can never disagree on what has expired.
    """
    live = state.live(now)
    return Swept(
        live,
        len(state.sightings) - len(live.sightings),
        len(state.seen) - len(live.seen),
    )


class KeyScan(Protocol):
    """The keys one partition's table holds, a bounded slice per call, from a cursor."""

    def next_keys(self, partition: int, limit: int) -> list[str]:
        """The keys of the next slice: at most ``limit`` examined after the last call's.

        Some may be rows' keys (the sweep passes over them); after the last
        slice of a pass the next call starts again at the first key.
        """
        ...


@dataclass
class RocksKeyScan:
    """Keys of one partition's RocksDB database, in key order, resumed by seeking.

    Faust keeps one database per partition but has no way to iterate one of
    them, nor to start anywhere but the first key, so this reads the store's
    databases directly. An iterator is opened per call and dropped (held
    between ticks it would pin the database's files); seeking costs a lookup.
    """

    table: Any
    _after: dict[int, bytes] = field(default_factory=dict)

    def next_keys(self, partition: int, limit: int) -> list[str]:
        store = self.table.data
        db = store._dbs.get(partition)  # noqa: SLF001 - Faust offers no per-partition iteration
        if db is None:
            return []
        after = self._after.pop(partition, None)
        serializers, serializer = self.table.app.serializers, self.table.key_serializer
        keys: list[str] = []
        examined = 0
        for raw in db.keys(from_key=after):
            if raw == after or raw == store.offset_key:
                continue
            examined += 1
            with contextlib.suppress(KeyDecodeError):  # not a key Faust wrote: not ours
                keys.append(serializers.loads_key(str, raw, serializer=serializer))
            if examined >= limit:
                self._after[partition] = raw  # the pass goes on from here
                break
        return keys


@dataclass
class MemoryKeyScan:
    """Keys of an in-memory table (``--store memory://``), every partition's in one dict.

    A pass works through a copy of the dict's keys taken when it starts (a dict
    cannot be iterated while it changes); a key added since is swept by the
    next pass, one deleted since reads as no state. A token's key belongs to
    the partition ``partition_for`` routes it to, a row's to the partition
    its key ends with. Copying costs about 10 ms per
    million keys, once per pass: the memory store is for tests and demos.
    """

    keys: Mapping[str, Any]
    partitions: int
    _passes: dict[int, tuple[list[str], int]] = field(default_factory=dict)

    def next_keys(self, partition: int, limit: int) -> list[str]:
        snapshot, at = self._passes.get(partition, ([], 0))
        if at >= len(snapshot):
            snapshot, at = list(self.keys), 0
        part = snapshot[at : at + limit]
        if at + limit < len(snapshot):
            self._passes[partition] = (snapshot, at + limit)
        else:
            self._passes.pop(partition, None)  # the pass ends: the next call copies anew
        return [
            k for k in part
            if (partition_for(k, self.partitions) == partition if _is_token(k)
                else _row_of(k, partition) is not None)
        ]  # fmt: skip


def key_scan(table: Any, partitions: int) -> KeyScan:
    """The scan of a Faust table's store (RocksDB or memory).

    Raises:
        TypeError: a store the sweep cannot scan (no other is configurable).
    """
    store = table.data
    if isinstance(store, RocksStore):
        return RocksKeyScan(table)
    if isinstance(store, MemoryStore):
        return MemoryKeyScan(store.data, partitions)
    raise TypeError(f"the retention sweep cannot scan a {type(store).__name__}")


@dataclass
class SweepReport:
    """What one slice of a sweep removed (counts only: no token leaves this object)."""

    keys: int = 0
    sightings: int = 0
    seen: int = 0
    #: Rows deleted with no token's state dropping them: expired, or named by none.
    rows: int = 0
    invalid: int = 0
    #: Tokens the sweep left with nothing: deleted once the batch is flushed.
    emptied: list[str] = field(default_factory=list)

    def add(self, other: SweepReport) -> None:
        """Count ``other``'s slice in this report too (a message holding several ticks)."""
        self.keys += other.keys
        self.sightings += other.sightings
        self.seen += other.seen
        self.rows += other.rows
        self.invalid += other.invalid
        self.emptied.extend(other.emptied)


@dataclass
class Sweeper:
    """Sweeps each partition a slice at a time, its cursor kept in the ``scan``."""

    scan: KeyScan
    partitions: int
    keys: int = DEFAULT_SWEEP_KEYS

    def sweep(self, batch: StateBatch, stored: Mapping[str, bytes | None], now: datetime
              ) -> SweepReport:  # fmt: skip
        """Sweep the next slice of ``batch.partition``'s tokens into ``batch``.

        Args:
            batch: the tick's state batch; the caller flushes it, then deletes
                the tokens the report names as ``emptied`` (``still_empty``).
            stored: the table as stored, to tell a state that still names rows
                another token's sweep deleted (its references are rewritten).
            now: the worker's clock (``Parts.clock``).
        """
        report = SweepReport()
        for token in self.scan.next_keys(batch.partition, self.keys):
            report.keys += 1
            if not _is_token(token):
                self._sweep_row(batch, stored, token, now, report)
                continue
            try:
                state = batch.get(token)
            except StateInvalid as exc:  # the hot path refuses it too; never the sweep's to drop
                report.invalid += 1
                logger.warning("a token state of partition %d does not decode (%s); not swept",
                               batch.partition, exc.reason)  # fmt: skip
                continue
            if state is None:
                continue
            swept = sweep_state(state, now)
            report.sightings += swept.sightings
            report.seen += swept.seen
            if swept.changed:  # dropped rows are deleted by the flush, before the state
                batch.set(token, swept.state)
            if is_empty(swept.state):
                report.emptied.append(token)
            elif not swept.changed and len(_named(stored.get(token))) > len(state.sightings):
                # It names rows another token's sweep (or expiry) deleted: decoding
                # skips them, but the references would stay for ever. A new object
                # equal to the loaded one: written whole, no row added or deleted.
                batch.set(token, TokenState(state.sightings, state.seen))
        return report

    def _sweep_row(self, batch: StateBatch, stored: Mapping[str, bytes | None], key: str,
                   now: datetime, report: SweepReport) -> None:  # fmt: skip
        """Delete the row if its sighting has expired, or if no token of the partition names it.

        States drop a sighting's row when they drop the sighting; a row left
        behind is one a worker wrote before being killed ahead of the states
        naming it, for an event then not kept when redelivered (expired by
        then, or its subject erased): it would hold sealed payloads for ever.
        Whether a token names it is read from the stored references, as
        ``_named`` does, never by re-deriving row keys.
        """
        reference = _row_of(key, batch.partition)
        if reference is None:
            return
        try:
            sighting = batch.row(reference)
        except StateInvalid:
            report.invalid += 1
            return
        if sighting is None:
            return
        if not sighting.expired(now):
            tokens = (t for t in sighting.all_tokens()
                      if partition_for(t, self.partitions) == batch.partition)  # fmt: skip
            if any(reference in _named(stored.get(t)) for t in tokens):
                return
        batch.drop_row(reference)
        report.rows += 1


def _named(stored: bytes | None) -> list[str]:
    """The row references a stored state holds, whether their rows still stand or not.

    Read by the table's own decoder (each reference is handed to the
    reader), never by re-deriving row keys, which a row written by an older
    release would not reproduce.
    """
    if not stored:
        return []
    named: list[str] = []
    decode_state(stored, lambda key: named.append(key))  # the reader answers None: no row
    return named


def still_empty(batch: StateBatch, emptied: list[str]) -> list[str]:
    """The emptied tokens still empty at the end of the batch: the caller drops them.

    Call before ``batch.flush`` (a later item of the same message may have
    routed an event by one of them), and ``batch.drop`` each token returned:
    the flush deletes it after its rows' deletions and its last state, in the
    same changelog partition.
    """
    return [token for token in emptied if is_empty(batch.get(token))]
