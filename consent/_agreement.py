"""The compiled form of a data-sharing agreement: what decisions and rules evaluate.

People write agreements in YAML (``consent._agreement_loader``); the loader
checks them and builds these frozen objects, so that code which decides a
disclosure never meets an unchecked string (DESIGN section 6).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from schemas import EventType

__all__ = ["Agreement", "ConsentModel", "LawfulBasis", "MatchRule", "Routing"]


class ConsentModel(StrEnum):
    """How a resident's choice bears on a disclosure under an agreement.

    ``required``: only with a standing grant. ``objection``: unless the resident
    objected (or withdrew). ``not-required``: the lawful basis is not consent and
    objection does not apply; only an erasure request stops it.
    """

    REQUIRED = "required"
    OBJECTION = "objection"
    NOT_REQUIRED = "not-required"


class Routing(StrEnum):
    """Which of the named recipients a given match goes to (the broker applies it).

    ``all``: every recipient. ``destination-council``: the recipients belonging to
    the council the subject moved to. ``source-councils``: the recipients belonging
    to the councils whose events matched.
    """

    ALL = "all"
    DESTINATION_COUNCIL = "destination-council"
    SOURCE_COUNCILS = "source-councils"


@dataclass(frozen=True, slots=True)
class LawfulBasis:
    """Why the disclosure is lawful, as the information-governance officer signed it off.

    ``article_6`` is a UK GDPR art 6(1) basis (``6(1)(e) ...``); ``article_9`` the
    art 9(2) condition (with its DPA 2018 Schedule 1 paragraph) when special-category
    data is involved; ``statutory_power`` the Act that empowers the sharing.
    """

    article_6: str
    statutory_power: str
    article_9: str | None = None
    notes: str = ""


@dataclass(frozen=True, slots=True)
class MatchRule:
    """Which events make a match: their types, from how many councils, how many, how close.

    A match needs at least ``count_min`` events of ``event_types`` about the same
    subject from at least ``distinct_sources_min`` councils, all within ``window``.
    """

    event_types: frozenset[EventType]
    distinct_sources_min: int
    count_min: int
    window: timedelta


@dataclass(frozen=True, slots=True)
class Agreement:
    """A data-sharing agreement in force between members of the federation.

    ``disclosures`` maps each event type to the payload fields a recipient may see;
    ``valid_until`` is exclusive (None: open-ended); ``retention`` bounds how long
    the broker may keep state about a subject for this agreement.
    """

    agreement_id: str
    title: str
    purpose: str
    lawful_basis: LawfulBasis
    controllers: frozenset[str]
    recipients: frozenset[str]
    disclosures: Mapping[EventType, frozenset[str]]
    match: MatchRule
    consent_model: ConsentModel
    valid_from: datetime
    valid_until: datetime | None
    retention: timedelta
    routing: Routing = Routing.ALL
    version: int = 1

    @property
    def purpose_scope(self) -> str:
        """The consent scope that covers every agreement with this purpose."""
        return f"purpose:{self.purpose}"

    def in_force(self, at: datetime) -> bool:
        """Whether the agreement covers something that happened at ``at``."""
        if at < self.valid_from:
            return False
        return self.valid_until is None or at < self.valid_until

    def allowed_fields(self, event_type: EventType | str) -> frozenset[str]:
        """Payload fields of ``event_type`` a recipient may see (empty: none, or not allowed)."""
        try:
            return self.disclosures.get(EventType(event_type), frozenset())
        except ValueError:
            return frozenset()
