"""What the broker does with one routed message in one partition: the pure core.

A Faust agent hands in a sighting (or a consent record) routed by one token, the
state held under that token, and the time; it gets back the new state and the
effects to publish: notifications, audit records, rejections. No I/O here, so
the same steps are tested without Kafka and replayed identically after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker._matching import Matcher
from broker._notifications import build_notification, sign_notification
from broker._rules import evaluate_rule, recipients_for
from broker._sightings import Sighting, TokenState
from consent import (
    Agreement,
    AuditChain,
    CandidateDisclosure,
    ConsentView,
    Directory,
    DisclosedEvent,
    TokenConsent,
    agreements_for,
    decide,
)
from schemas import (
    AuditRecord,
    CitizenEvent,
    ConsentRecord,
    ConsentState,
    MatchNotification,
    Outcome,
)

__all__ = ["Effects", "PartitionCore", "retention_for"]


@dataclass
class Effects:
    """What one step asks the app to publish, in order."""

    notifications: list[MatchNotification] = field(default_factory=list)
    audit: list[AuditRecord] = field(default_factory=list)
    duplicate: bool = False
    decisions: list[tuple[str, Outcome]] = field(default_factory=list)


class _OneToken(ConsentView):
    """The consent held in this partition: the routed token's record."""

    def __init__(self, token: str, held: TokenConsent | None) -> None:
        self._token, self._held = token, held

    def get(self, token: str) -> TokenConsent | None:
        return self._held if token == self._token else None


def _sealed_fields(sighting: Sighting, agreement_id: str, agreement: Agreement) -> frozenset[str]:
    """The fields a sealed payload under this agreement can hold.

    The broker cannot open a payload to list its fields; the connector seals only
    what the agreement allows, so the agreement's list is what would be revealed.
    """
    if any(p.agreement_id == agreement_id for p in sighting.sealed):
        return agreement.allowed_fields(sighting.event_type)
    return frozenset()


def retention_for(directory: Directory, sighting: Sighting | CitizenEvent) -> timedelta | None:
    """The longest retention among the agreements this event could serve (None: none)."""
    spans = [
        a.retention for a in agreements_for(directory, sighting.event_type, sighting.source_council)
    ]
    return max(spans, default=None)


@dataclass
class PartitionCore:
    """The broker's per-partition logic, parameterised by directory, matcher and key."""

    directory: Directory
    matcher: Matcher
    signing_key: Ed25519PrivateKey

    def on_sighting(
        self,
        token: str,
        sighting: Sighting,
        state: TokenState | None,
        consent: TokenConsent | None,
        chain: AuditChain,
        now: datetime,
    ) -> tuple[TokenState, Effects]:
        """Match the sighting under ``token``; decide and notify what the agreements allow.

        Rules are evaluated only where the event is routed by an exact token or
        finds a fuzzy match, and consent is read from this token's record, which
        connectors route to the same partition (DESIGN section 6).
        """
        effects = Effects()
        held = (state or TokenState()).live(now)
        # A replay (a restarted worker, or a message sent twice) is matched again
        # against everything but itself: its notifications are re-sent under the
        # same deterministic ids, so nothing is lost between state and output.
        effects.duplicate = sighting.event_id in held.event_ids()
        base = held.without({sighting.event_id}) if effects.duplicate else held
        observation = self.matcher.observe(base, token, sighting, now)
        new_state = held if effects.duplicate else observation.state
        if not observation.matches:
            return new_state, effects
        view = _OneToken(token, consent)
        agreements = agreements_for(self.directory, sighting.event_type, sighting.source_council)
        for agreement in agreements:
            hit = evaluate_rule(agreement, sighting, observation.matches, now=now)
            if hit is None:
                continue
            allowed: list[str] = []
            decisions = []
            for recipient in recipients_for(agreement, hit, self.directory):
                candidate = CandidateDisclosure(
                    agreement_id=agreement.agreement_id,
                    recipient=recipient,
                    events=tuple(
                        DisclosedEvent(
                            s.event_id,
                            s.source_council,
                            s.event_type,
                            s.occurred_at,
                            _sealed_fields(s, agreement.agreement_id, agreement),
                        )
                        for s in hit.sightings
                    ),
                    subjects=(tuple(sorted({token, *sighting.tokens})),),
                )
                decision = decide(agreement, candidate, view, now)
                decisions.append(decision)
                effects.decisions.append((agreement.agreement_id, decision.outcome))
                if decision.allowed:
                    allowed.append(recipient)
            notification = None
            if allowed:
                notification = sign_notification(
                    build_notification(agreement, hit, allowed, created_at=now), self.signing_key
                )
                effects.notifications.append(notification)
            for decision in decisions:
                effects.audit.extend(
                    chain.append(
                        decision,
                        notification_id=notification.notification_id
                        if notification is not None and decision.allowed
                        else None,
                    )
                )
        return new_state, effects

    def on_consent(
        self,
        token: str,
        record: ConsentRecord,
        state: TokenState | None,
        consent: TokenConsent | None,
        chain: AuditChain,
        now: datetime,
    ) -> tuple[TokenState | None, TokenConsent, list[AuditRecord]]:
        """Apply a consent record; an erasure request forgets the token's sightings."""
        updated = (consent or TokenConsent()).apply(record)
        if record.state is not ConsentState.ERASURE_REQUESTED:
            return state, updated, []
        erasure = chain.append_erasure(f"era-{record.record_id}-{token[-12:]}", (token,), now)
        return TokenState(), updated, [erasure]
