"""Matching on tokens: exact tokens with certainty, blocking tokens by Dice.

The streaming broker and the batch dry run (``fedbroker link``) share one
function, ``Matcher.observe(state, token, sighting, now)``: given the live
sightings under one token and a new sighting routed by that token, it returns
the new state and the matches found (DESIGN section 5). ``match_batch`` is
literally ``observe`` applied in order over a dict of states, so the two give
the same pairs by construction.

A pair of events that shares several tokens must count once, yet the tokens of
one event live on different Kafka partitions. So each pair is *owned* by one
token, decided locally from the two sightings alone: the smallest exact token
they share if any (method ``exact``, score 1.0), else the smallest blocking
token they share (method ``fuzzy``, Dice score kept, emitted only at or above
the threshold). Every other token sees the pair and stays silent. No
one-to-one assignment is imposed: a person may have many events, and each
matching pair is reported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from broker._sightings import Sighting, TokenState
from broker._similarity import DEFAULT_DICE_THRESHOLD, check_threshold, dice_many

__all__ = [
    "EXACT",
    "FUZZY",
    "BatchResult",
    "Match",
    "MatchMethod",
    "Matcher",
    "Observation",
    "dedupe_matches",
    "match_batch",
    "pair_id",
    "run_batch",
]

MatchMethod = Literal["exact", "fuzzy"]
EXACT: MatchMethod = "exact"
FUZZY: MatchMethod = "fuzzy"
_CERTAIN = 1.0


def pair_id(event_a: str, event_b: str) -> str:
    """Deterministic, order-free id of a pair of events."""
    digest = hashlib.sha256()
    for part in sorted((event_a, event_b)):
        digest.update(part.encode("utf-8") + b"\x00")
    return "pair-" + digest.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Match:
    """Two events judged to concern the same subject.

    ``sighting`` is the event just observed, ``other`` the earlier one it met;
    ``token`` is the key of the token that owns the pair (see module doc).
    """

    sighting: Sighting
    other: Sighting
    score: float
    method: MatchMethod
    token: str

    @property
    def pair_id(self) -> str:
        return pair_id(self.sighting.event_id, self.other.event_id)

    @property
    def event_ids(self) -> tuple[str, str]:
        """Both event ids, sorted."""
        a, b = sorted((self.sighting.event_id, self.other.event_id))
        return a, b

    def to_dict(self) -> dict[str, Any]:
        """The pair as the broker's ``<prefix>.broker.matches`` topic carries it.

        References only (event ids, councils, opaque source references): what an
        operator needs to measure linkage quality, and nothing about the person.
        """
        events = sorted((self.sighting, self.other), key=lambda s: s.event_id)
        return {
            "pair_id": self.pair_id,
            "method": self.method,
            "score": self.score,
            "events": [
                {"event_id": s.event_id, "source_council": s.source_council,
                 "source_ref": s.source_ref}
                for s in events
            ],
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Observation:
    """What one ``observe`` call returns: the state to store and what it found.

    ``scores`` are the Dice scores of the pairs this token owns as a blocking
    token, whether or not they reached the threshold: the unlabelled sample from
    which the threshold is fitted (``ScoreHistogram.add``).
    """

    state: TokenState
    matches: tuple[Match, ...]
    scores: tuple[float, ...]


def _owner(mine: frozenset[str], theirs: Iterable[str]) -> str | None:
    """The token that owns a pair: the smallest one both sightings carry."""
    return min((t for t in theirs if t in mine), default=None)


@dataclass(frozen=True, slots=True)
class Matcher:
    """The pure matching core, parameterised by the Dice threshold.

    Args:
        threshold: Dice score at or above which a blocked pair matches (default
            ``DEFAULT_DICE_THRESHOLD``; normally the fitted threshold or the
            configured override).
    """

    threshold: float = DEFAULT_DICE_THRESHOLD

    def __post_init__(self) -> None:
        check_threshold(self.threshold)

    def observe(
        self, state: TokenState | None, token: str, sighting: Sighting, now: datetime | None
    ) -> Observation:
        """Meet ``sighting`` with the live sightings under ``token``; remember it.

        Args:
            state: the token's stored state (None: nothing stored yet).
            token: the token key the sighting was routed by; it must be one of
                ``sighting.tokens`` (exact) or ``sighting.blocking``.
            sighting: the new sighting.
            now: expiry time (None: nothing expires). The stored state comes back
                without expired sightings.

        A sighting already present (a replay) finds nothing and changes nothing.
        """
        live = (state if state is not None else TokenState()).live(now)
        if any(s.event_id == sighting.event_id for s in live.sightings):
            return Observation(live, (), ())
        exact = token in sighting.tokens
        mine_exact = frozenset(sighting.tokens)
        mine_blocking = frozenset(sighting.blocking)
        matches: list[Match] = []
        scores: list[float] = []
        blocked: list[Sighting] = []
        for other in live.sightings:
            if exact:
                if _owner(mine_exact, other.tokens) == token:
                    matches.append(Match(sighting, other, _CERTAIN, EXACT, token))
            elif (
                other.fuzzy is not None
                # Encodings of two parameter sets are unrelated bit strings: never
                # compared, not even scored (old sightings are left to expire).
                and other.encoding == sighting.encoding
                and _owner(mine_blocking, other.blocking) == token
            ):
                blocked.append(other)
        if blocked and sighting.fuzzy is not None:
            values = dice_many(sighting.fuzzy, [o.fuzzy or b"" for o in blocked])
            for other, value in zip(blocked, values.tolist(), strict=True):
                # Pairs that also share an exact token stay in the unlabelled
                # sample (they are most of the true matches the fit must see)
                # but are reported by their exact token, not here.
                scores.append(value)
                if value >= self.threshold and _owner(mine_exact, other.tokens) is None:
                    matches.append(Match(sighting, other, value, FUZZY, token))
        # The remembered ids stay with the state: dropping them here would let a
        # replay of an erased event through as new (issue 11).
        kept = replace(live, sightings=(*live.sightings, sighting))
        return Observation(kept, tuple(matches), tuple(scores))


def dedupe_matches(matches: Iterable[Match]) -> tuple[Match, ...]:
    """One match per pair, first seen kept, exact preferred over fuzzy.

    ``observe`` already emits each pair once; this is the guard for callers that
    merge matches from several runs or partitions.
    """
    best: dict[str, Match] = {}
    for match in matches:
        key = match.pair_id
        held = best.get(key)
        if held is None or (held.method == FUZZY and match.method == EXACT):
            best[key] = match
    return tuple(best.values())


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The outcome of a batch run: matches, the blocked scores, the final states."""

    matches: tuple[Match, ...]
    scores: tuple[float, ...]
    states: dict[str, TokenState]


def run_batch(
    sightings: Iterable[Sighting], matcher: Matcher, *, now: datetime | None = None
) -> BatchResult:
    """Feed ``sightings`` in order through ``matcher.observe``, one call per token.

    This is exactly what the streaming broker does, with every token's state in
    one dict instead of one partition each.
    """
    states: dict[str, TokenState] = {}
    matches: list[Match] = []
    scores: list[float] = []
    for sighting in sightings:
        for token in sighting.all_tokens():
            seen = matcher.observe(states.get(token), token, sighting, now)
            states[token] = seen.state
            matches.extend(seen.matches)
            scores.extend(seen.scores)
    return BatchResult(tuple(matches), tuple(scores), states)


def match_batch(
    sightings: Iterable[Sighting],
    threshold: float = DEFAULT_DICE_THRESHOLD,
    *,
    now: datetime | None = None,
) -> tuple[Match, ...]:
    """The pairs the streaming broker would find on ``sightings`` in this order."""
    return run_batch(sightings, Matcher(threshold), now=now).matches
