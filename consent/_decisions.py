"""Deciding one disclosure: deny by default, and always say why.

``decide`` is a pure function of the agreement, the candidate disclosure, the
consent view and the time, so the streaming broker, the batch dry run and the
tests all get the same answer for the same inputs. It checks every condition and
returns every failing one: an operator sees "field not allowed *and* recipient
not named", not only the first. ``Reason`` values are also metric labels and
audit-record fields (DESIGN sections 6 and 7).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from consent._agreement import Agreement, ConsentModel
from consent._consent_state import ConsentView, effective_consent
from schemas import CitizenEvent, EventType, Outcome

__all__ = ["CandidateDisclosure", "Decision", "DisclosedEvent", "Reason", "decide", "decision_id"]


class Reason(StrEnum):
    """Why a decision went the way it did; a stable label for metrics and audit."""

    ALLOWED = "allowed"
    NO_AGREEMENT = "no-agreement"
    AGREEMENT_MISMATCH = "agreement-mismatch"
    NOT_IN_FORCE = "agreement-not-in-force"
    NO_EVENTS = "no-events"
    NO_SUBJECTS = "no-subjects"
    SOURCE_NOT_CONTROLLER = "source-not-controller"
    EVENT_TYPE_NOT_ALLOWED = "event-type-not-allowed"
    FIELD_NOT_ALLOWED = "field-not-allowed"
    RECIPIENT_NOT_NAMED = "recipient-not-named"
    CONSENT_NOT_GRANTED = "consent-not-granted"
    CONSENT_WITHDRAWN = "consent-withdrawn"
    OBJECTED = "objected"
    ERASURE_REQUESTED = "erasure-requested"


@dataclass(frozen=True, slots=True)
class DisclosedEvent:
    """One event in a candidate disclosure and the payload fields it would reveal."""

    event_id: str
    source_council: str
    event_type: EventType
    occurred_at: datetime
    fields: frozenset[str] = frozenset()

    @classmethod
    def from_event(cls, event: CitizenEvent, fields: Iterable[str] = ()) -> DisclosedEvent:
        return cls(
            event.event_id,
            event.source_council,
            event.event_type,
            event.occurred_at,
            frozenset(fields),
        )


@dataclass(frozen=True, slots=True)
class CandidateDisclosure:
    """What the broker proposes to disclose: to whom, under which agreement, about whom.

    ``subjects`` holds one tuple of token keys (``LinkageToken.key()``) per person
    involved; consent must be satisfied for each of them.
    """

    agreement_id: str
    recipient: str
    events: tuple[DisclosedEvent, ...]
    subjects: tuple[tuple[str, ...], ...]

    @property
    def subject_tokens(self) -> tuple[str, ...]:
        """Every token involved, sorted and distinct (what the audit record holds)."""
        return tuple(sorted({token for subject in self.subjects for token in subject}))

    @property
    def event_ids(self) -> tuple[str, ...]:
        return tuple(sorted({event.event_id for event in self.events}))


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one candidate: ``outcome`` and every reason for it."""

    decision_id: str
    agreement_id: str
    recipient: str
    outcome: Outcome
    reasons: tuple[Reason, ...]
    event_ids: tuple[str, ...]
    subject_tokens: tuple[str, ...]
    decided_at: datetime

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOWED


def decision_id(candidate: CandidateDisclosure) -> str:
    """Deterministic id: the same candidate always gets the same id, so replays dedupe."""
    digest = hashlib.sha256()
    for part in (candidate.agreement_id, candidate.recipient, *candidate.event_ids):
        digest.update(part.encode("utf-8") + b"\x00")
    return "dec-" + digest.hexdigest()[:32]


def _consent_reasons(
    agreement: Agreement, candidate: CandidateDisclosure, consent: ConsentView
) -> set[Reason]:
    reasons: set[Reason] = set()
    for subject in candidate.subjects:
        entry = effective_consent(
            consent,
            subject,
            agreement_id=agreement.agreement_id,
            purpose=agreement.purpose,
            controllers=agreement.controllers,
        )
        state = entry.state.value if entry is not None else None
        if state == "erasure-requested":
            reasons.add(Reason.ERASURE_REQUESTED)
        elif agreement.consent_model is ConsentModel.REQUIRED:
            if state == "withdrawn":
                reasons.add(Reason.CONSENT_WITHDRAWN)
            elif state == "objected":
                reasons.add(Reason.OBJECTED)
            elif state != "granted":
                reasons.add(Reason.CONSENT_NOT_GRANTED)
        elif agreement.consent_model is ConsentModel.OBJECTION:
            if state == "objected":
                reasons.add(Reason.OBJECTED)
            elif state == "withdrawn":
                reasons.add(Reason.CONSENT_WITHDRAWN)
    return reasons


def decide(
    agreement: Agreement | None,
    candidate: CandidateDisclosure,
    consent: ConsentView,
    now: datetime,
) -> Decision:
    """Decide one disclosure. Allowed only if every condition holds; otherwise denied.

    Args:
        agreement: the agreement the candidate claims (None: not in the directory).
        candidate: the proposed disclosure.
        consent: the consent held per token (``ConsentLedger`` or a table).
        now: the decision time, recorded in the decision. The agreement must be
            in force both at ``now`` (the disclosure) and at each event's
            ``occurred_at`` (what it covers).
    """
    reasons: set[Reason] = set()
    if not candidate.events:
        reasons.add(Reason.NO_EVENTS)
    if not candidate.subjects or not all(candidate.subjects):
        reasons.add(Reason.NO_SUBJECTS)
    if agreement is None:
        reasons.add(Reason.NO_AGREEMENT)
    else:
        if agreement.agreement_id != candidate.agreement_id:
            reasons.add(Reason.AGREEMENT_MISMATCH)
        if candidate.recipient not in agreement.recipients:
            reasons.add(Reason.RECIPIENT_NOT_NAMED)
        if not agreement.in_force(now):
            # An ended agreement discloses nothing more, not even what happened before it ended.
            reasons.add(Reason.NOT_IN_FORCE)
        for event in candidate.events:
            if not agreement.in_force(event.occurred_at):
                reasons.add(Reason.NOT_IN_FORCE)
            if event.source_council not in agreement.controllers:
                reasons.add(Reason.SOURCE_NOT_CONTROLLER)
            allowed_types = agreement.match.event_types | agreement.disclosures.keys()
            if event.event_type not in allowed_types:
                reasons.add(Reason.EVENT_TYPE_NOT_ALLOWED)
            elif not event.fields <= agreement.allowed_fields(event.event_type):
                reasons.add(Reason.FIELD_NOT_ALLOWED)
        reasons |= _consent_reasons(agreement, candidate, consent)
    ordered = tuple(r for r in Reason if r in reasons) or (Reason.ALLOWED,)
    return Decision(
        decision_id=decision_id(candidate),
        agreement_id=candidate.agreement_id,
        recipient=candidate.recipient,
        outcome=Outcome.ALLOWED if ordered == (Reason.ALLOWED,) else Outcome.DENIED,
        reasons=ordered,
        event_ids=candidate.event_ids,
        subject_tokens=candidate.subject_tokens,
        decided_at=now,
    )
