"""What the broker remembers about an event, per token, and for how long.

A **sighting** is the broker's note of one accepted event: its references,
type, time, fuzzy encoding, non-identifying attributes and sealed payloads, and
the time after which no agreement lets the broker keep it (the longest retention
of the agreements that use the event). Each of an event's exact and blocking
tokens keeps a ``TokenState``: the live sightings seen under that token, in
arrival order. That is the Faust table value, keyed by ``LinkageToken.key()``,
so it serialises to plain dicts (``to_dict``) or bytes (``to_bytes``).

Expiry uses event time (``occurred_at + retention``) so that a replay, a second
worker and the batch dry run forget the same things at the same points.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from broker._errors import StateInvalid
from schemas import CitizenEvent, EventType, SealedPayload

__all__ = ["Sighting", "TokenState"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


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
        )

    def all_tokens(self) -> tuple[str, ...]:
        """Every token key the event is routed by (exact first, then blocking)."""
        return self.tokens + tuple(b for b in self.blocking if b not in self.tokens)

    def expired(self, now: datetime) -> bool:
        """Whether no agreement lets the broker keep this sighting at ``now``."""
        return self.expires_at is not None and self.expires_at <= now

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (bytes as base64, times as ISO 8601)."""
        return {
            "event_id": self.event_id,
            "source_council": self.source_council,
            "source_ref": self.source_ref,
            "event_type": self.event_type.value,
            "occurred_at": self.occurred_at.isoformat(),
            "key_epoch": self.key_epoch,
            "tokens": list(self.tokens),
            "blocking": list(self.blocking),
            "fuzzy": None if self.fuzzy is None else _b64(self.fuzzy),
            "attributes": dict(self.attributes),
            "sealed": [
                [p.recipient, p.agreement_id, _b64(p.enc), _b64(p.ciphertext)] for p in self.sealed
            ],
            "expires_at": None if self.expires_at is None else self.expires_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Sighting:
        """Inverse of ``to_dict``.

        Raises:
            StateInvalid: a field is missing or malformed.
        """
        try:
            expires = data["expires_at"]
            fuzzy = data["fuzzy"]
            return cls(
                event_id=str(data["event_id"]),
                source_council=str(data["source_council"]),
                source_ref=str(data["source_ref"]),
                event_type=EventType(data["event_type"]),
                occurred_at=datetime.fromisoformat(data["occurred_at"]),
                key_epoch=int(data["key_epoch"]),
                tokens=tuple(str(t) for t in data["tokens"]),
                blocking=tuple(str(t) for t in data["blocking"]),
                fuzzy=None if fuzzy is None else _unb64(fuzzy),
                attributes=MappingProxyType(
                    {str(k): str(v) for k, v in data["attributes"].items()}
                ),
                sealed=tuple(
                    SealedPayload(str(r), str(a), _unb64(e), _unb64(c))
                    for r, a, e, c in data["sealed"]
                ),
                expires_at=None if expires is None else datetime.fromisoformat(expires),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateInvalid(f"sighting cannot be read back ({type(exc).__name__})") from exc

    def without_sealed(self) -> Sighting:
        """The same sighting without payloads (when the app keeps them by event id)."""
        return replace(self, sealed=())


@dataclass(frozen=True, slots=True)
class TokenState:
    """The live sightings under one token, oldest arrival first (a table value).

    Immutable: every change returns a new state, so the streaming ``observe``
    stays a pure function and a Faust agent simply stores what it returns.
    """

    sightings: tuple[Sighting, ...] = ()

    def __len__(self) -> int:
        return len(self.sightings)

    def event_ids(self) -> frozenset[str]:
        return frozenset(s.event_id for s in self.sightings)

    def live(self, now: datetime | None) -> TokenState:
        """Without the sightings expired at ``now`` (None: nothing expires)."""
        if now is None:
            return self
        kept = tuple(s for s in self.sightings if not s.expired(now))
        return self if len(kept) == len(self.sightings) else TokenState(kept)

    def add(self, sighting: Sighting) -> TokenState:
        """With ``sighting`` appended; a replayed event id replaces nothing."""
        if sighting.event_id in self.event_ids():
            return self
        return TokenState((*self.sightings, sighting))

    def without(self, event_ids: Collection[str]) -> TokenState:
        """Without the given events (erasure, or an event withdrawn at source)."""
        return TokenState(tuple(s for s in self.sightings if s.event_id not in event_ids))

    def to_dict(self) -> dict[str, Any]:
        return {"sightings": [s.to_dict() for s in self.sightings]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TokenState:
        """Inverse of ``to_dict``; raises ``StateInvalid`` on malformed input."""
        try:
            items: Iterable[Mapping[str, Any]] = data["sightings"]
            return cls(tuple(Sighting.from_dict(item) for item in items))
        except (KeyError, TypeError) as exc:
            raise StateInvalid("token state has no sightings list") from exc

    def to_bytes(self) -> bytes:
        """Compact UTF-8 JSON of ``to_dict`` (a Faust ``raw`` table value)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> TokenState:
        """Inverse of ``to_bytes``; raises ``StateInvalid`` on malformed input."""
        try:
            decoded = json.loads(data)
        except (UnicodeDecodeError, ValueError) as exc:
            raise StateInvalid("token state bytes are not JSON") from exc
        if not isinstance(decoded, dict):
            raise StateInvalid("token state is not an object")
        return cls.from_dict(decoded)
