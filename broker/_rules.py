"""Agreements' match rules over one new event and the events it matched.

On each new event the app asks, for every agreement the event can serve: do
this event and its matched sightings make a match under the agreement's
``MatchRule`` (event types, at least ``count_min`` events from at least
``distinct_sources_min`` councils, all within ``window``)? A hit becomes one
``CandidateDisclosure`` per recipient, which ``consent.decide`` then allows or
denies. Events from the same council count too; the rule's distinct-sources
minimum decides whether that is enough (DESIGN section 6).

Each event's exact tokens form one subject for consent: blocking tokens are
shared by many people and must never carry someone's consent. An event with no
exact token (matched by its encoding only) therefore has an empty subject, and
``decide`` denies it with ``no-subjects``: deny by default.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from broker._matching import EXACT, FUZZY, Match, MatchMethod
from broker._sightings import Sighting
from consent import Agreement, CandidateDisclosure, Directory, DisclosedEvent, route

__all__ = [
    "RuleHit",
    "disclosures_for",
    "evaluate",
    "evaluate_rule",
    "recipients_for",
    "subjects_of",
]

_CERTAIN = 1.0


@dataclass(frozen=True, slots=True)
class RuleHit:
    """The events that satisfy one agreement's rule, anchored on a new event.

    ``sightings`` are in time order (then event id) and include the new event;
    ``score`` is the weakest pairwise score joining them to it and ``method`` is
    ``exact`` only if every join was exact.
    """

    agreement_id: str
    event_id: str
    sightings: tuple[Sighting, ...]
    score: float
    method: MatchMethod

    @property
    def event_ids(self) -> tuple[str, ...]:
        return tuple(sorted(s.event_id for s in self.sightings))

    @property
    def source_councils(self) -> tuple[str, ...]:
        return tuple(sorted({s.source_council for s in self.sightings}))

    @property
    def destination_council(self) -> str:
        """The council of the latest event: where a moving resident has arrived."""
        return self.sightings[-1].source_council


def _partners(event: Sighting, matches: Iterable[Match]) -> dict[str, tuple[Sighting, Match]]:
    best: dict[str, tuple[Sighting, Match]] = {}
    for match in matches:
        if match.sighting.event_id == event.event_id:
            other = match.other
        elif match.other.event_id == event.event_id:
            other = match.sighting
        else:
            continue
        held = best.get(other.event_id)
        if held is None or match.score > held[1].score:
            best[other.event_id] = (other, match)
    return best


def evaluate_rule(
    agreement: Agreement,
    event: Sighting,
    matches: Iterable[Match],
    *,
    now: datetime | None = None,
) -> RuleHit | None:
    """Whether ``event`` and the events it matched satisfy the agreement's rule.

    Args:
        agreement: the agreement whose ``match`` rule is evaluated.
        event: the new event's sighting; the rule fires only on its types.
        matches: matches involving ``event`` (others are ignored); a pair
            reported more than once counts once, at its best score.
        now: sightings expired at ``now`` are ignored (default None: none are).

    Returns:
        The largest set of qualifying events within one window containing the
        new event (earliest window on a tie), or None.
    """
    rule = agreement.match
    if event.event_type not in rule.event_types:
        return None
    partners = _partners(event, matches)
    pool = [event] + [
        other
        for other, _ in partners.values()
        if other.event_type in rule.event_types and not (now is not None and other.expired(now))
    ]
    pool.sort(key=lambda s: (s.occurred_at, s.event_id))
    best: tuple[Sighting, ...] = ()
    for start in pool:
        if start.occurred_at > event.occurred_at:
            break
        if event.occurred_at - start.occurred_at > rule.window:
            continue
        chosen = tuple(
            s for s in pool if start.occurred_at <= s.occurred_at <= start.occurred_at + rule.window
        )
        sources = {s.source_council for s in chosen}
        if len(chosen) < rule.count_min or len(sources) < rule.distinct_sources_min:
            continue
        if (len(sources), len(chosen)) > (len({s.source_council for s in best}), len(best)):
            best = chosen
    if not best:
        return None
    joins = [partners[s.event_id][1] for s in best if s.event_id != event.event_id]
    return RuleHit(
        agreement_id=agreement.agreement_id,
        event_id=event.event_id,
        sightings=best,
        score=min((m.score for m in joins), default=_CERTAIN),
        method=EXACT if all(m.method == EXACT for m in joins) else FUZZY,
    )


def subjects_of(sightings: Iterable[Sighting]) -> tuple[tuple[str, ...], ...]:
    """One subject per distinct set of exact tokens among the events (sorted).

    Consent is checked per subject and a disclosure needs every subject's
    consent (DESIGN section 10): a match, however confident, never merges two
    people's consent, so the newest record of one cannot override another's
    objection. An event with no exact token gives the empty subject, which
    ``decide`` denies (``no-subjects``).
    """
    return tuple(sorted({s.tokens for s in sightings}))


def disclosures_for(
    agreement: Agreement, hit: RuleHit, recipients: Sequence[str]
) -> list[CandidateDisclosure]:
    """One candidate disclosure per recipient, for ``consent.decide``.

    An event discloses the agreement's allowed fields for its type only when it
    carries a payload sealed to that recipient under this agreement; otherwise
    it is disclosed as a reference (no fields).
    """
    subjects = subjects_of(hit.sightings)
    candidates = []
    for recipient in sorted(set(recipients)):
        events = tuple(
            DisclosedEvent(
                s.event_id,
                s.source_council,
                s.event_type,
                s.occurred_at,
                agreement.allowed_fields(s.event_type)
                if any(
                    p.recipient == recipient and p.agreement_id == agreement.agreement_id
                    for p in s.sealed
                )
                else frozenset(),
            )
            for s in hit.sightings
        )
        candidates.append(CandidateDisclosure(agreement.agreement_id, recipient, events, subjects))
    return candidates


def recipients_for(
    agreement: Agreement, hit: RuleHit, directory: Directory | None
) -> tuple[str, ...]:
    """The agreement's recipients for this hit, after its routing (sorted).

    ``destination-council`` routing uses the council of the hit's latest event.
    Without a directory every named recipient is returned (the dry run's view).
    """
    if directory is None:
        return tuple(sorted(agreement.recipients))
    return route(
        agreement,
        directory,
        source_councils=hit.source_councils,
        destination_council=hit.destination_council,
    )


def evaluate(
    agreement: Agreement,
    event: Sighting,
    matches: Iterable[Match],
    *,
    directory: Directory | None = None,
    now: datetime | None = None,
) -> list[CandidateDisclosure]:
    """The candidate disclosures this event raises under ``agreement`` (maybe none).

    Args:
        agreement: the agreement to evaluate.
        event: the new event's sighting.
        matches: the matches ``observe`` found for it.
        directory: for the agreement's routing (``consent.route``); None sends
            to every named recipient.
        now: expiry time for the matched sightings (default None).
    """
    hit = evaluate_rule(agreement, event, matches, now=now)
    if hit is None:
        return []
    recipients = recipients_for(agreement, hit, directory)
    return disclosures_for(agreement, hit, recipients)
