"""Keeping token states decoded between messages, and encoding them incrementally.

A token's state is stored as bytes in a Faust table (RocksDB and a changelog);
decoding it on every message and re-encoding every sighting on every write cost
more than the matching itself. Most messages only append one sighting, so the
new bytes are the old ones with one row added, and the decoded state from the
previous message is still valid if the stored bytes are unchanged. The cache is
bounded and checked against the stored bytes, so a rebalance or a restart never
serves a stale state: at worst it decodes again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import MutableMapping
from dataclasses import dataclass, field

from broker._sightings import Sighting, TokenState

__all__ = ["DEFAULT_CACHED_TOKENS", "StateBatch", "StateCache"]

DEFAULT_CACHED_TOKENS = 50_000
_CACHED_ROWS = 4096


@dataclass
class StateCache:
    """Decoded states of the most recently used tokens, keyed by token."""

    capacity: int = DEFAULT_CACHED_TOKENS
    _held: OrderedDict[str, tuple[bytes, TokenState]] = field(default_factory=OrderedDict)
    _rows: OrderedDict[str, tuple[Sighting, bytes]] = field(default_factory=OrderedDict)

    def load(self, token: str, stored: bytes | None) -> TokenState | None:
        """The state the stored bytes encode (decoded only if the cache is stale)."""
        if not stored:
            self._held.pop(token, None)
            return None
        held = self._held.get(token)
        if held is not None and held[0] == stored:
            self._held.move_to_end(token)
            return held[1]
        state = TokenState.from_bytes(stored)
        self._remember(token, stored, state)
        return state

    def encode(
        self, token: str, before: TokenState | None, stored: bytes | None, after: TokenState
    ) -> bytes:
        """The bytes to store for ``after``, appending to ``stored`` when that is all it takes."""
        rows = self._added(before, after) if stored else None
        if rows is not None and stored is not None:
            encoded = TokenState.append_encoded(stored, b",".join(rows))
        else:  # what ``to_bytes`` writes, from rows encoded once per event, not per token
            every = [self._row(s) for s in after.sightings]
            every += [TokenState.encode_seen(s) for s in after.seen]
            encoded = b"[" + b",".join(every) + b"]"
        self._remember(token, encoded, after)
        return encoded

    def _added(self, before: TokenState | None, after: TokenState) -> list[bytes] | None:
        """The encoded rows ``after`` adds to ``before`` (sightings and seen ids appended
        at the end: a batch may add several), or None if it changed anything else."""
        if before is None:
            return None
        old_sightings, old_seen = len(before.sightings), len(before.seen)
        new_sightings = len(after.sightings) - old_sightings
        new_seen = len(after.seen) - old_seen
        if new_sightings < 0 or new_seen < 0 or not new_sightings + new_seen:
            return None
        if after.sightings[:old_sightings] != before.sightings:
            return None
        if after.seen[:old_seen] != before.seen:
            return None
        rows = [self._row(s) for s in after.sightings[old_sightings:]]
        return rows + [TokenState.encode_seen(s) for s in after.seen[old_seen:]]

    def _row(self, sighting: Sighting) -> bytes:
        """An event reaches one partition per token: encode its row once.

        Kept by event id with the sighting it encodes, and served only for that
        same sighting: two different events claiming one id never share a row.
        """
        held = self._rows.get(sighting.event_id)
        if held is not None and (held[0] is sighting or held[0] == sighting):
            return held[1]
        row = TokenState.encode_row(sighting)
        self._rows[sighting.event_id] = (sighting, row)
        while len(self._rows) > _CACHED_ROWS:
            self._rows.popitem(last=False)
        return row

    def _remember(self, token: str, encoded: bytes, state: TokenState) -> None:
        self._held[token] = (encoded, state)
        self._held.move_to_end(token)
        while len(self._held) > self.capacity:
            self._held.popitem(last=False)


@dataclass
class StateBatch:
    """The token states one routed batch touches: each read once, each written once.

    A routed batch holds many sightings that share tokens (a busy blocking
    token, a person's several events); reading and writing the table per
    sighting made one changelog record per sighting, holding the token's whole
    list. Here a token is read on first use, changed in memory as often as the
    batch needs, and ``flush`` writes each changed token once: changelog
    records grow with the tokens changed, not the sightings.
    """

    table: MutableMapping[str, bytes | None]
    cache: StateCache
    _loaded: dict[str, tuple[bytes | None, TokenState | None]] = field(default_factory=dict)
    _current: dict[str, TokenState | None] = field(default_factory=dict)

    def get(self, token: str) -> TokenState | None:
        """The token's state as this batch has left it so far."""
        if token in self._current:
            return self._current[token]
        stored = self.table.get(token)
        state = self.cache.load(token, stored)
        self._loaded[token] = (stored, state)
        self._current[token] = state
        return state

    def set(self, token: str, state: TokenState) -> None:
        if token not in self._current:
            self.get(token)
        self._current[token] = state

    def flush(self) -> int:
        """Write every changed token once; returns how many were written."""
        written = 0
        for token, state in self._current.items():
            stored, before = self._loaded[token]
            if state is None or state is before:
                continue
            self.table[token] = self.cache.encode(token, before, stored, state)
            written += 1
        self._loaded.clear()
        self._current.clear()
        return written
