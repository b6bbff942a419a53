"""Deterministic record ids, and what an event id is bound to.

An event id is a digest of the event's own council, source system, opaque
reference, type and time, so the same source record always gets the same id
(a replay shows as one) and the broker can recompute it from the signed event.
That binding is what makes an id safe to deduplicate on: without it, a council
could publish an event under another council's id and have the real one
dropped as its "duplicate". The broker refuses an event whose id is not its
own (``event-id-unbound``); both sides use this one definition.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from schemas._catalogue import EventType
from schemas._records import CitizenEvent

__all__ = ["citizen_event_id", "event_id_bound", "event_id_for"]

_ID_HEX = 32


def event_id_for(*parts: str) -> str:
    """Deterministic id of ``parts``: the same parts always yield the same id."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:_ID_HEX]


def citizen_event_id(
    council: str, system: str, source_ref: str, event_type: EventType, occurred_at: datetime
) -> str:
    """The id of the event a council publishes about one source record.

    ``occurred_at`` must be aware UTC, as the event carries it (its ISO form is hashed).
    """
    return event_id_for(council, system, source_ref, event_type.value, occurred_at.isoformat())


def event_id_bound(event: CitizenEvent) -> bool:
    """Whether ``event`` carries the id its own council, system, reference, type and time give."""
    expected = citizen_event_id(
        event.source_council, event.source_system, event.source_ref, event.event_type,
        event.occurred_at,
    )  # fmt: skip
    return event.event_id == expected
