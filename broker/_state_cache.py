"""Token states stored as references; each event's sighting stored once per partition.

A token's state is the list of events seen under it. Stored whole in every
token's state, an event's sighting (references, tokens, encoding, sealed
payloads: about 2 KB) was written once per token, and again with every later
change to that token, so a busy blocking token re-sent every sighting it held
at each batch: 18 KB of changelog per event in a 60,000-event backfill, more
per event as the data grew (issue 15). So the ``token-state`` table holds two
kinds of entry:

- per token, a JSON list of references to its sightings (``[key]``) and of
  the ids it has seen (``[event_id, origin, until]``, see ``Seen``), in
  arrival order: a few dozen bytes per sighting;
- per sighting, its row (``Sighting.to_row``) once per partition the event
  reaches, under ``event_id/digest/partition``, the digest being of the row
  itself: two different events claiming one id never share a row. Written
  once, when the event first enters a state of that partition; deleted when
  a state drops the sighting, which only erasure, withdrawal at source and
  expiry do, and each of those drops it from every token.

Rows live in the same table as the states, so in the same changelog
partition, and a batch queues its rows (and their deletions) before its
states: Kafka keeps that order within a partition, so a worker killed at any
point never leaves a state naming a row that was not written, nor a dropped
row that a state no longer names. (In a table of their own, a kill -9 once
left references to rows that never landed, and a redelivered event then met a
different set of held sightings: a replay sent two notifications of other
event sets.) A row key always holds a ``/`` after its last ``:``, so it can
never be a token's key (``domain:epoch:hex``).

A reference whose row is gone is an event another token of the partition
already dropped (erased, withdrawn or expired: the same for every token), and
is skipped. Decoded states and rows are kept between batches; a state is
checked against its stored bytes, so a rebalance or a restart never serves a
stale one, and a row is found by its content digest, so never a wrong one.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from broker._errors import StateInvalid
from broker._sightings import Seen, Sighting, TokenState

__all__ = ["DEFAULT_CACHED_TOKENS", "StateBatch", "StateCache", "decode_state", "encode_state"]

DEFAULT_CACHED_TOKENS = 50_000
#: Decoded sightings kept by key: the rows of the events the recent batches touched.
_CACHED_SIGHTINGS = 100_000
#: Encoded rows kept by event id: an event reaches one partition per batch, and
#: its keys are needed again when its states are written.
_CACHED_ROWS = 4096
#: Ids of deleted rows remembered, so that no decoded state serves one again.
_CACHED_GONE = 100_000
_SEEN_ROW = 3
_REF_ROW = 1
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

RowReader = Callable[[str], Sighting | None]


def row_key(sighting: Sighting, row: bytes) -> str:
    """The sightings-table key of ``row``: the event id and a digest of the row."""
    return f"{sighting.event_id}/{hashlib.blake2b(row, digest_size=8).hexdigest()}"


@functools.lru_cache(maxsize=_CACHED_SIGHTINGS)
def _reference(key: str) -> bytes:
    """One reference as a state lists it: a busy token's state is rewritten whole at
    each batch that touches it, naming the same rows again (7% of the match agent's
    time went to encoding them afresh in the 200,000-event backfill)."""
    return _ENCODER.encode([key]).encode()


def encode_state(state: TokenState, key_of: Callable[[Sighting], str]) -> bytes:
    """A token's stored value: a reference per sighting, then the ids it has seen."""
    rows = [_reference(key_of(s)) for s in state.sightings]
    rows += [TokenState.encode_seen(s) for s in state.seen]
    return b"[" + b",".join(rows) + b"]"


def _json_list(data: bytes, what: str) -> list[Any]:
    """``data`` as the JSON list it must be; ``StateInvalid`` naming ``what`` otherwise."""
    try:
        decoded = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise StateInvalid(f"{what} is not JSON") from exc
    if not isinstance(decoded, list):
        raise StateInvalid(f"{what} is not a list")
    return decoded


def decode_state(data: bytes, read: RowReader) -> TokenState:
    """Inverse of ``encode_state``; ``read`` gives the sighting a reference names.

    Raises:
        StateInvalid: the bytes are not a list of references and seen ids.
    """
    decoded = _json_list(data, "token state")
    sightings: list[Sighting] = []
    seen: list[Seen] = []
    for row in decoded:
        if isinstance(row, list) and len(row) == _SEEN_ROW:
            seen.append(Seen.from_row(row))
        elif isinstance(row, list) and len(row) == _REF_ROW and isinstance(row[0], str):
            sighting = read(row[0])
            if sighting is not None:  # dropped by another token of this partition
                sightings.append(sighting)
        else:
            raise StateInvalid("token state holds a row that is neither a reference nor an id")
    return TokenState(tuple(sightings), tuple(seen))


@dataclass
class StateCache:
    """Decoded states of the recent tokens, decoded sightings, and encoded rows."""

    capacity: int = DEFAULT_CACHED_TOKENS
    _held: OrderedDict[str, tuple[bytes, TokenState]] = field(default_factory=OrderedDict)
    _sightings: OrderedDict[str, Sighting] = field(default_factory=OrderedDict)
    _keys: OrderedDict[str, tuple[Sighting, str]] = field(default_factory=OrderedDict)
    _rows: OrderedDict[str, tuple[Sighting, str, bytes]] = field(default_factory=OrderedDict)
    _gone: set[str] = field(default_factory=set)  # ids of rows deleted by this process

    def load(self, token: str, stored: bytes | None, read_row: Callable[[str], bytes | None]
             ) -> TokenState | None:  # fmt: skip
        """The state the stored bytes encode (decoded only if the cache is stale)."""
        if not stored:
            self._held.pop(token, None)
            return None
        held = self._held.get(token)
        if held is not None and held[0] == stored and not self._holds_gone(held[1]):
            self._held.move_to_end(token)
            return held[1]
        state = decode_state(stored, lambda key: self.sighting(key, read_row))
        self._remember(token, stored, state)
        return state

    def encode(self, token: str, state: TokenState) -> bytes:
        """The bytes to store for ``state`` (its rows are the caller's to store)."""
        encoded = encode_state(state, self.key_of)
        self._remember(token, encoded, state)
        return encoded

    def key_of(self, sighting: Sighting) -> str:
        """The sighting's row key: known for any sighting read or written lately.

        Served only for that same sighting: two events claiming one id never
        share a key (their rows' digests differ).
        """
        held = self._keys.get(sighting.event_id)
        if held is not None and (held[0] is sighting or held[0] == sighting):
            self._keys.move_to_end(sighting.event_id)
            return held[1]
        return self.keyed(sighting)[0]

    def keyed(self, sighting: Sighting) -> tuple[str, bytes]:
        """The sighting's key and row, the row encoded once per event."""
        held = self._rows.get(sighting.event_id)
        if held is not None and (held[0] is sighting or held[0] == sighting):
            _, key, row = held
        else:
            row = _ENCODER.encode(sighting.to_row()).encode()
            key = row_key(sighting, row)
            self._rows[sighting.event_id] = (sighting, key, row)
            while len(self._rows) > _CACHED_ROWS:
                self._rows.popitem(last=False)
        self._keep(key, sighting)
        return key, row

    def forget(self, key: str) -> None:
        """A row deleted: never served again from memory, under any token.

        Another token's state decoded before still lists the sighting, with
        the same stored bytes: it is decoded again (without it) when next
        read. Past ``_CACHED_GONE`` ids every decoded state is dropped instead.
        """
        self._sightings.pop(key, None)
        if len(self._gone) >= _CACHED_GONE:
            self._gone.clear()
            self._held.clear()
        self._gone.add(key.rsplit("/", 1)[0])

    def _holds_gone(self, state: TokenState) -> bool:
        gone = self._gone
        return bool(gone) and any(s.event_id in gone for s in state.sightings)

    def sighting(self, key: str, read_row: Callable[[str], bytes | None]) -> Sighting | None:
        """The sighting of row ``key``, decoded once and kept; ``None`` if the row is gone.

        Raises:
            StateInvalid: the row does not decode.
        """
        held = self._sightings.get(key)
        if held is not None:
            self._sightings.move_to_end(key)
            return held
        stored = read_row(key)
        if not stored:
            return None
        sighting = Sighting.from_row(_json_list(stored, "sighting row"))
        self._keep(key, sighting)
        return sighting

    def _keep(self, key: str, sighting: Sighting) -> None:
        self._sightings[key] = sighting
        self._sightings.move_to_end(key)
        while len(self._sightings) > _CACHED_SIGHTINGS:
            self._sightings.popitem(last=False)
        self._keys[sighting.event_id] = (sighting, key)
        self._keys.move_to_end(sighting.event_id)
        while len(self._keys) > _CACHED_SIGHTINGS:
            self._keys.popitem(last=False)

    def _remember(self, token: str, encoded: bytes, state: TokenState) -> None:
        self._held[token] = (encoded, state)
        self._held.move_to_end(token)
        while len(self._held) > self.capacity:
            self._held.popitem(last=False)


class KeyValues(Protocol):
    """What a ``StateBatch`` reads and writes: ``TableWrites`` in a worker, a dict in tests.

    ``pop`` is only ever a deletion: its result is not used.
    """

    def get(self, key: str, default: None = None, /) -> bytes | None: ...

    def __setitem__(self, key: str, value: bytes, /) -> None: ...

    def pop(self, key: str, default: None = None, /) -> object: ...


@dataclass
class StateBatch:
    """The token states one routed batch touches: each read once, each written once.

    A routed batch holds many sightings that share tokens (a busy blocking
    token, a person's several events); a token is read on first use, changed
    in memory as often as the batch needs, and ``flush`` writes each changed
    token once, each sighting new to the partition's states once, and deletes
    the row of each sighting a state dropped.
    """

    #: Token states and sighting rows, in one table (so one changelog partition).
    store: KeyValues
    cache: StateCache
    partition: int
    _loaded: dict[str, TokenState | None] = field(default_factory=dict)
    _current: dict[str, TokenState | None] = field(default_factory=dict)
    _unnamed: set[str] = field(default_factory=set)  # rows no state names: deleted at flush
    _dropped: list[str] = field(default_factory=list)  # emptied tokens: deleted last

    def get(self, token: str) -> TokenState | None:
        """The token's state as this batch has left it so far."""
        if token in self._current:
            return self._current[token]
        state = self.cache.load(token, self.store.get(token), self._read_row)
        self._loaded[token] = state
        self._current[token] = state
        return state

    def _at(self, key: str) -> str:
        """The row's table key in this batch's partition.

        The same row stands in every partition its event reaches; one table key
        per partition keeps Faust's store deleting it from this partition's
        database (it deletes a key where it last saw it), never another's.
        """
        return f"{key}/{self.partition}"

    def _read_row(self, key: str) -> bytes | None:
        return self.store.get(self._at(key))

    def row(self, key: str) -> Sighting | None:
        """The sighting this partition's row ``key`` (``event_id/digest``) holds, if it stands.

        Raises:
            StateInvalid: the row does not decode.
        """
        return self.cache.sighting(key, self._read_row)

    def drop_row(self, key: str) -> None:
        """Delete row ``key`` at the flush, before any state: one no state will name again.

        For the retention sweep: a row whose sighting has expired, or that no
        token of the partition names (a worker killed between a batch's rows
        and its states, the event then not kept when redelivered).
        """
        self._unnamed.add(key)

    def drop(self, token: str) -> None:
        """Delete the token's state at the flush, after every row and state it writes.

        For the retention sweep's emptied tokens (``still_empty``): the
        deletion follows its rows' deletions and its last state in the
        changelog partition.
        """
        self._dropped.append(token)

    def set(self, token: str, state: TokenState) -> None:
        if token not in self._current:
            self.get(token)
        self._current[token] = state

    def flush(self) -> tuple[int, int]:
        """Write every changed token once; returns (states written, rows written).

        Rows and their deletions are queued before the states that reference or
        stop referencing them; in one table they share a changelog partition,
        where Kafka keeps that order: a worker killed between the two leaves a
        row no state references yet (written again when the event is
        redelivered) or a reference to a deleted row (skipped), never a
        reference to a missing row nor a dropped row kept.
        """
        changed: dict[str, TokenState] = {}
        added: dict[str, bytes] = {}
        dropped: set[str] = set()
        for token, state in self._current.items():
            before = self._loaded[token]
            if state is None or state is before:
                continue
            held = {s.event_id: s for s in before.sightings} if before is not None else {}
            for sighting in state.sightings:
                old = held.pop(sighting.event_id, None)
                if old is not None and (old is sighting or old == sighting):
                    continue
                if old is not None:  # another event under the same id: its row goes
                    dropped.add(self.cache.key_of(old))
                key, row = self.cache.keyed(sighting)
                added[key] = row
            dropped.update(self.cache.key_of(s) for s in held.values())
            changed[token] = state
        for key in (dropped | self._unnamed) - added.keys():
            self.store.pop(self._at(key), None)
            self.cache.forget(key)
        self._unnamed.clear()
        for key, row in added.items():
            self.store[self._at(key)] = row
        for token, state in changed.items():
            self.store[token] = self.cache.encode(token, state)
        for token in self._dropped:
            self.store.pop(token, None)
        self._dropped.clear()
        self._loaded.clear()
        self._current.clear()
        return len(changed), len(added)
