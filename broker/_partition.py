"""What the broker does with one routed message in one partition: the pure core.

A Faust agent hands in a sighting (or a consent record) routed by one token, the
state held under that token, and the time; it gets back the new state and the
effects to publish: notifications, audit records, rejections. No I/O here, so
the same steps are tested without Kafka and replayed identically after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker._matching import Match, Matcher
from broker._notifications import build_notification
from broker._rules import evaluate_rule, recipients_for, subjects_of
from broker._sightings import Seen, Sighting, TokenState
from consent import (
    AuditChain,
    CandidateDisclosure,
    ConsentLedger,
    ConsentView,
    Directory,
    DisclosedEvent,
    agreements_for,
    decide,
    erased_since,
)
from schemas import (
    AuditRecord,
    CitizenEvent,
    ConsentRecord,
    ConsentState,
    MatchNotification,
    Outcome,
)

__all__ = ["NO_AGREEMENT_LABEL", "ConsentEffects", "Effects", "PartitionCore", "retention_for"]

#: The agreement label of a match no agreement covers, in metrics.
NO_AGREEMENT_LABEL = "none"


@dataclass
class Effects:
    """What one step asks the app to publish, in order."""

    matches: tuple[Match, ...] = ()
    scores: tuple[float, ...] = ()
    notifications: list[MatchNotification] = field(default_factory=list)
    audit: list[AuditRecord] = field(default_factory=list)
    #: The same signed event read again from another place (a replay): refused
    #: as ``duplicate``, with no other effect.
    duplicate: bool = False
    #: The same message read again (a restarted or rebalanced worker): handled
    #: as the first time, its effects re-sent under the same ids; not a refusal.
    redelivered: bool = False
    decisions: list[tuple[str, Outcome]] = field(default_factory=list)


def _sealed_fields(sighting: Sighting, agreement_id: str, recipient: str) -> frozenset[str]:
    """The names of the fields this recipient would be able to open under this agreement.

    The broker cannot open a payload; the connector lists the names (never the
    values) beside the ciphertext, so a council that seals more than the
    agreement grants is refused with ``field-not-allowed``.
    """
    return frozenset(
        name
        for p in sighting.sealed
        if p.agreement_id == agreement_id and p.recipient == recipient
        for name in p.fields
    )


def retention_for(directory: Directory, sighting: Sighting | CitizenEvent) -> timedelta:
    """The longest retention among the agreements this event could serve.

    An event no agreement uses may be matched on arrival (and the match audited
    as ``no-agreement``) but is not kept: zero retention.
    """
    spans = [
        a.retention for a in agreements_for(directory, sighting.event_type, sighting.source_council)
    ]
    return max(spans, default=timedelta(0))


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
        consent: ConsentView | None,
        chain: AuditChain,
        now: datetime,
        *,
        origin: str = "",
        seen_until: datetime | None = None,
        published_at: datetime | None = None,
    ) -> tuple[TokenState, Effects]:
        """Match the sighting under ``token``; decide and notify what the agreements allow.

        ``origin`` is where the event was read (``topic/partition/offset``) and
        ``seen_until`` the end of its freshness window: the token remembers the
        id until then, kept or not, so the same event read again from anywhere
        else is a replay with no effects, even once its sighting has expired
        (issue 11). Without an origin, a known id is treated as a re-delivery.

        ``consent`` is the consent of every subject by exact token, wherever it
        was recorded (the app's global consent table), so a match decided under a
        token the consent record never carried still sees it. Each event's own
        exact tokens form one subject, and every subject must consent
        (``subjects_of``, DESIGN section 10).

        ``published_at`` is the event's publication time: an event published
        before an erasure of its subject that ``consent`` already holds is
        state that erasure removed, read late (another council's topic ran
        ahead). It is neither kept nor matched, only remembered as seen.
        """
        effects = Effects()
        held = (state if state is not None else TokenState()).live(now)
        known = held.remembered(sighting.event_id)
        if known is not None and origin and known.origin != origin:
            effects.duplicate = True  # the same signed event sent again: nothing to redo
            return held, effects
        # Published before an erasure of its subject already read: part of what the
        # erasure removed, so neither kept nor matched (a new grant must not disclose it).
        if (
            published_at is not None
            and consent is not None
            and erased_since(consent, sighting.tokens, published_at)
        ):
            if origin and seen_until is not None and known is None:
                held = held.remember(Seen(sighting.event_id, origin, seen_until))
            return held, effects
        # A re-delivery (a restarted worker read the same message again) is matched
        # again against what had arrived before it, as the first time: its
        # notifications are re-sent under the same deterministic ids, so nothing is
        # lost between state and output and nothing new is made up from later arrivals.
        effects.redelivered = sighting.event_id in held.event_ids() or known is not None
        base = held.before(sighting.event_id) if effects.redelivered else held
        # ``held`` is already live at ``now``: the matcher need not scan for expiry again.
        observation = self.matcher.observe(base, token, sighting, None)
        keep = not effects.redelivered and not sighting.expired(now)
        new_state = replace(observation.state, seen=held.seen) if keep else held
        if origin and seen_until is not None and known is None:
            new_state = new_state.remember(Seen(sighting.event_id, origin, seen_until))
        effects.matches, effects.scores = observation.matches, observation.scores
        if not observation.matches:
            return new_state, effects
        view = consent if consent is not None else ConsentLedger()
        agreements = agreements_for(self.directory, sighting.event_type, sighting.source_council)
        if not agreements:
            effects.audit.extend(
                self._no_agreement(token, sighting, observation.matches, chain, now)
            )
            effects.decisions.append((NO_AGREEMENT_LABEL, Outcome.DENIED))
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
                            _sealed_fields(s, agreement.agreement_id, recipient),
                        )
                        for s in hit.sightings
                    ),
                    subjects=subjects_of(hit.sightings),
                )
                decision = decide(agreement, candidate, view, now)
                decisions.append(decision)
                # Decided again (a re-delivery) under consent read since: the chain
                # keeps the first answer and appends nothing, so a denial on the
                # record stays a denial; notifying now would disclose what the
                # audit trail, and a subject-access answer, say was refused.
                recorded = chain.recorded_outcome(decision.decision_id)
                outcome = Outcome.DENIED if recorded is Outcome.DENIED else decision.outcome
                effects.decisions.append((agreement.agreement_id, outcome))
                if outcome is Outcome.ALLOWED:
                    allowed.append(recipient)
            notifications = {
                recipient: build_notification(agreement, hit, recipient, created_at=now)
                for recipient in allowed
            }
            effects.notifications.extend(notifications.values())
            for decision in decisions:
                notification = notifications.get(decision.recipient)
                effects.audit.extend(
                    chain.append(
                        decision,
                        notification_id=notification.notification_id
                        if notification is not None and decision.allowed
                        else None,
                    )
                )
        return new_state, effects

    def _no_agreement(
        self,
        token: str,
        sighting: Sighting,
        matches: tuple[Match, ...],
        chain: AuditChain,
        now: datetime,
    ) -> list[AuditRecord]:
        """Deny by default, on the record: a match no agreement covers is audited."""
        events = [sighting, *(m.other if m.sighting is sighting else m.sighting for m in matches)]
        candidate = CandidateDisclosure(
            agreement_id="",
            recipient="",
            events=tuple(
                DisclosedEvent(s.event_id, s.source_council, s.event_type, s.occurred_at)
                for s in events
            ),
            subjects=subjects_of(events),
        )
        return chain.append(decide(None, candidate, ConsentLedger(), now))

    def on_consent(
        self,
        token: str,
        record: ConsentRecord,
        state: TokenState | None,
        consent: ConsentLedger | None,
        chain: AuditChain,
        now: datetime,
        *,
        forget: frozenset[str] = frozenset(),
    ) -> ConsentEffects:
        """Apply a consent record routed by ``token``; an erasure forgets the subject.

        Under a blocking token other people's sightings live beside the
        subject's, so an erasure removes only the sightings that share one of
        the record's exact tokens, or that ``forget`` names. The subject's events
        may also sit under tokens the record does not carry (a consent source
        without the postcode, say), so the effects name, for every other token
        of each removed sighting, the events to forget there: the app re-routes
        the record with them (a cascade goes one step: ``forget`` is then set).
        """
        updated = (consent if consent is not None else ConsentLedger()).apply(record)
        if record.state is not ConsentState.ERASURE_REQUESTED:
            return ConsentEffects(state, updated)
        subject = {t.key() for t in record.tokens}
        held = state if state is not None else TokenState()
        removed = [
            s for s in held.sightings if s.event_id in forget or subject.intersection(s.tokens)
        ]
        cascade: dict[str, set[str]] = {}
        if not forget:
            routed = {t.key() for t in (*record.tokens, *record.blocking_tokens)}
            for sighting in removed:
                for other in sighting.all_tokens():
                    if other not in routed:
                        cascade.setdefault(other, set()).add(sighting.event_id)
        audit = []
        if removed or not forget:
            # The record's council is in the id: record ids are the councils' own
            # (the broker cannot recompute them), so another council's erasure
            # under the same id must not pass for a replay of this one.
            erasure = chain.append_erasure(
                f"era-{record.council}-{record.record_id}-{token[-12:]}",
                tuple(sorted(subject)),
                now,
            )
            if erasure.record_hash:  # a chain that knows the id links nothing (OnceChain)
                audit.append(erasure)
        return ConsentEffects(
            held.without({s.event_id for s in removed}),
            updated,
            audit,
            {t: frozenset(ids) for t, ids in sorted(cascade.items())},
        )


@dataclass(frozen=True, slots=True)
class ConsentEffects:
    """What applying one consent record asks the app to store and publish."""

    state: TokenState | None
    consent: ConsentLedger
    audit: list[AuditRecord] = field(default_factory=list)
    cascade: dict[str, frozenset[str]] = field(default_factory=dict)
