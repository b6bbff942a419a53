"""What the broker remembers about an event, per token, and for how long.

A **sighting** is the broker's note of one accepted event: its references,
type, time, fuzzy encoding, non-identifying attributes and sealed payloads, and
the time after which no agreement lets the broker keep it (the longest retention
of the agreements that use the event). Each of an event's exact and blocking
tokens keeps a ``TokenState``: the live sightings seen under that token, in
arrival order. Stored in the Faust tables as references to each sighting's row
(``broker/_state_cache.py``); ``to_dict`` gives the whole state as plain data.

Expiry uses event time (``occurred_at + retention``) so that a replay, a second
worker and the batch dry run forget the same things at the same points.

Independently of retention, each token also remembers that it has *seen* an
event id (``Seen``: the id, where it was read, and until when) for the whole
freshness window, so a signed event re-sent 29 days later is still known as a
replay after its sighting expired (or when no agreement kept it at all).
"""

from __future__ import annotations

import functools
import json
from binascii import Error as BinasciiError
from binascii import a2b_base64, b2a_base64
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from broker._errors import StateInvalid
from schemas import DEFAULT_ENCODING, CitizenEvent, EventType, SealedPayload

__all__ = ["Seen", "Sighting", "TokenState"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


_FIELDS = (
    "event_id",
    "source_council",
    "source_ref",
    "event_type",
    "occurred_at",
    "key_epoch",
    "tokens",
    "blocking",
    "fuzzy",
    "attributes",
    "sealed",
    "expires_at",
    "encoding",
)


def _b64(data: bytes) -> str:
    return b2a_base64(data, newline=False).decode("ascii")


def _unb64(text: str) -> bytes:
    return a2b_base64(text)


@dataclass(frozen=True, slots=True)
class Sighting:
    """One event as the matcher sees it: references and encodings, no clear data.

    ``tokens`` and ``blocking`` hold token keys (``LinkageToken.key()``), which is
    how the matcher tells an exact-token state from a blocking-token one.
    ``expires_at`` None means "keep" (the batch dry run has no retention).
    """

    event_id: str
    source_council: str
    source_ref: str
    event_type: EventType
    occurred_at: datetime
    key_epoch: int
    tokens: tuple[str, ...] = ()
    blocking: tuple[str, ...] = ()
    fuzzy: bytes | None = None
    attributes: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    sealed: tuple[SealedPayload, ...] = ()
    expires_at: datetime | None = None
    encoding: str = DEFAULT_ENCODING

    @classmethod
    def from_event(cls, event: CitizenEvent, *, retention: timedelta | None) -> Sighting:
        """The sighting of an accepted event, kept for ``retention`` after it occurred.

        Args:
            event: the verified event.
            retention: the longest retention among the agreements that use this
                event's type (None: keep until removed, as ``link`` does).
        """
        return cls(
            event_id=event.event_id,
            source_council=event.source_council,
            source_ref=event.source_ref,
            event_type=event.event_type,
            occurred_at=event.occurred_at,
            key_epoch=event.key_epoch,
            tokens=tuple(sorted({t.key() for t in event.tokens})),
            blocking=tuple(sorted({t.key() for t in event.blocking_tokens})),
            fuzzy=event.fuzzy,
            attributes=MappingProxyType(dict(event.attributes)),
            sealed=tuple(event.sealed),
            expires_at=None if retention is None else event.occurred_at + retention,
            encoding=event.encoding,
        )

    def all_tokens(self) -> tuple[str, ...]:
        """Every token key the event is routed by (exact first, then blocking)."""
        return self.tokens + tuple(b for b in self.blocking if b not in self.tokens)

    def expired(self, now: datetime) -> bool:
        """Whether no agreement lets the broker keep this sighting at ``now``."""
        return self.expires_at is not None and self.expires_at <= now

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (bytes as base64, times as ISO 8601)."""
        return dict(zip(_FIELDS, self.to_row(), strict=True))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Sighting:
        """Inverse of ``to_dict``.

        Raises:
            StateInvalid: a field is missing or malformed.
        """
        try:
            row = [data[name] for name in _FIELDS[:-1]]
            row.append(data.get("encoding", DEFAULT_ENCODING))
        except (KeyError, TypeError) as exc:
            raise StateInvalid("sighting cannot be read back (missing field)") from exc
        return cls.from_row(row)

    def to_row(self) -> list[Any]:
        """Positional JSON-able form: what ``TokenState.to_bytes`` stores, compactly."""
        return [
            self.event_id,
            self.source_council,
            self.source_ref,
            self.event_type.value,
            self.occurred_at.isoformat(),
            self.key_epoch,
            list(self.tokens),
            list(self.blocking),
            None if self.fuzzy is None else b2a_base64(self.fuzzy, newline=False).decode(),
            dict(self.attributes),
            [
                [p.recipient, p.agreement_id, _b64(p.enc), _b64(p.ciphertext), list(p.fields)]
                for p in self.sealed
            ],
            None if self.expires_at is None else self.expires_at.isoformat(),
            self.encoding,
        ]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Sighting:
        """Inverse of ``to_row``; raises ``StateInvalid`` on malformed input."""
        try:
            (event_id, council, ref, kind, occurred, epoch, tokens, blocking, fuzzy, attributes,
             sealed, expires, *encoding) = row  # fmt: skip
            return cls(
                str(event_id),
                str(council),
                str(ref),
                EventType(kind),
                datetime.fromisoformat(occurred),
                int(epoch),
                tuple(tokens),
                tuple(blocking),
                None if fuzzy is None else a2b_base64(fuzzy),
                MappingProxyType(dict(attributes)) if attributes else _EMPTY,
                tuple(
                    SealedPayload(r, a, _unb64(e), _unb64(c), tuple(f[0]) if f else ())
                    for r, a, e, c, *f in sealed
                ),
                None if expires is None else datetime.fromisoformat(expires),
                str(encoding[0]) if encoding else DEFAULT_ENCODING,  # rows kept before v3: clk-v1
            )
        except (KeyError, TypeError, ValueError, AttributeError, BinasciiError) as exc:
            raise StateInvalid(f"sighting cannot be read back ({type(exc).__name__})") from exc


@dataclass(frozen=True, slots=True)
class Seen:
    """An event id this token has seen, where it was first read, and until when to remember it.

    ``origin`` (``topic/partition/offset``) tells a crashed worker's re-delivery
    of the same message (processed again, as before) from a replay (refused).
    ``until`` is the end of the freshness window: after it, admission refuses
    the event as ``stale`` anyway.
    """

    event_id: str
    origin: str
    until: datetime

    def to_row(self) -> list[str]:
        return [self.event_id, self.origin, self.until.isoformat()]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Seen:
        try:
            event_id, origin, until = row
            return cls(str(event_id), str(origin), datetime.fromisoformat(until))
        except (TypeError, ValueError) as exc:
            raise StateInvalid(f"seen entry cannot be read back ({type(exc).__name__})") from exc


#: ``json.dumps(row, separators=(",", ":"), ensure_ascii=False)`` without building
#: an encoder per call.
_ROW_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
#: Seen ids whose row stays encoded: every token of an event remembers the same
#: ``Seen``, and a state rewritten whole re-encodes its token's recent ids.
_SEEN_ROWS_CACHED = 65_536


@functools.lru_cache(maxsize=_SEEN_ROWS_CACHED)
def _seen_row(seen: Seen) -> bytes:
    """``Seen`` is frozen: equal values always encode to the same bytes."""
    return _ROW_ENCODER.encode(seen.to_row()).encode()


@dataclass(frozen=True, slots=True)
class TokenState:
    """The live sightings under one token, oldest arrival first (a table value).

    Immutable: every change returns a new state, so the streaming ``observe``
    stays a pure function and a Faust agent simply stores what it returns.
    """

    sightings: tuple[Sighting, ...] = ()
    seen: tuple[Seen, ...] = ()

    # No ``__len__``: a state holding only remembered ids would be falsy, and
    # ``if state`` would then forget a replay guard (compare with None instead).
    def sighting_count(self) -> int:
        """How many live sightings the state holds (not the ids it only remembers)."""
        return len(self.sightings)

    def event_ids(self) -> frozenset[str]:
        return frozenset(s.event_id for s in self.sightings)

    def live(self, now: datetime | None) -> TokenState:
        """Without the sightings expired, and the ids seen past their window, at ``now``.

        None: nothing expires.
        """
        if now is None:
            return self
        kept = tuple(s for s in self.sightings if not s.expired(now))
        seen = tuple(s for s in self.seen if s.until > now)
        if len(kept) == len(self.sightings) and len(seen) == len(self.seen):
            return self
        return TokenState(kept, seen)

    def remembered(self, event_id: str) -> Seen | None:
        """Where and until when this token saw ``event_id``, if it did."""
        return next((s for s in self.seen if s.event_id == event_id), None)

    def remember(self, seen: Seen) -> TokenState:
        """With ``seen`` recorded (an id already recorded keeps its first origin)."""
        if self.remembered(seen.event_id) is not None:
            return self
        return TokenState(self.sightings, (*self.seen, seen))

    def add(self, sighting: Sighting) -> TokenState:
        """With ``sighting`` appended; a replayed event id replaces nothing."""
        if sighting.event_id in self.event_ids():
            return self
        return TokenState((*self.sightings, sighting), self.seen)

    def before(self, event_id: str) -> TokenState:
        """The sightings that arrived before ``event_id`` (all of them if it is absent).

        Sightings are held in arrival order, so this is the state the event met.
        """
        ids = [s.event_id for s in self.sightings]
        cut = ids.index(event_id) if event_id in ids else len(ids)
        return TokenState(self.sightings[:cut], self.seen)

    def without(self, event_ids: Collection[str]) -> TokenState:
        """Without the given events (erasure, or an event withdrawn at source).

        The ids stay seen: an id and an offset are no personal data, and a
        replay of an erased subject's event must not bring it back.
        """
        kept = tuple(s for s in self.sightings if s.event_id not in event_ids)
        return TokenState(kept, self.seen)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sightings": [s.to_dict() for s in self.sightings],
            "seen": [s.to_row() for s in self.seen],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TokenState:
        """Inverse of ``to_dict``; raises ``StateInvalid`` on malformed input."""
        try:
            items: Iterable[Mapping[str, Any]] = data["sightings"]
            seen: Iterable[Sequence[Any]] = data.get("seen", ())
            return cls(
                tuple(Sighting.from_dict(item) for item in items),
                tuple(Seen.from_row(row) for row in seen),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise StateInvalid("token state has no sightings list") from exc

    @staticmethod
    def encode_seen(seen: Seen) -> bytes:
        """One seen id as a stored state lists it (encoded once per value)."""
        return _seen_row(seen)
