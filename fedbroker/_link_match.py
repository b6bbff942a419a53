"""``broker.run_batch`` for a whole extract at once: the same pairs and scores, faster.

``fedbroker link`` must report exactly what the streaming broker would
(DESIGN section 5), and ``run_batch`` is that by construction: ``observe``
applied in order, one call per (sighting, token). On two 200,000-row extracts
that is millions of calls, each rebuilding a token's immutable state, which
alone would take most of the 5-minute budget of issue 12. A dry run has no
expiry and no replays, so the state of a token is just the list of sightings
seen under it: this module keeps a dict of lists (blocking), walks sightings
and tokens in the same order as ``run_batch``, applies the same ownership rule
(``broker._matching``: a pair belongs to the smallest token both carry, exact
before fuzzy) and scores Dice with popcounts of whole encodings held as ints,
the arithmetic of ``broker.dice`` and ``dice_many`` (``2.0 * common / total``,
0.0 for two empty filters). It returns the same matches in the same order, and
the same scores in the same order (so the threshold fit is bit-identical);
``tests/fedbroker/test_link_speed.py`` holds it to ``run_batch`` on the
synthetic councils, and it falls back to ``run_batch`` itself whenever a
sighting is outside what it handles (a repeated event id, encodings of unequal
lengths).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from broker import EXACT, FUZZY, BatchResult, Match, Matcher, Sighting, run_batch

__all__ = ["match_all"]


def _owner(mine: frozenset[str], theirs: Sequence[str]) -> str | None:
    return min((t for t in theirs if t in mine), default=None)


def _handled(sightings: Sequence[Sighting]) -> bool:
    ids = {s.event_id for s in sightings}
    lengths = {len(s.fuzzy) for s in sightings if s.fuzzy is not None}
    return len(ids) == len(sightings) and len(lengths) <= 1


def match_all(
    sightings: Sequence[Sighting], *, progress: Callable[[int], None] | None = None
) -> BatchResult:
    """What ``run_batch(sightings, Matcher(0.0))`` returns: every blocked pair, scored.

    The returned ``states`` is empty: a dry run never reads them.

    Args:
        sightings: in publication order (``run_batch``'s order).
        progress: called with the number of sightings matched so far, now and
            then (default None).
    """
    if not _handled(sightings):
        return run_batch(sightings, Matcher(0.0))
    exact = [frozenset(s.tokens) for s in sightings]
    blocking = [frozenset(s.blocking) for s in sightings]
    bits = [None if s.fuzzy is None else int.from_bytes(s.fuzzy, "big") for s in sightings]
    ones = [0 if b is None else b.bit_count() for b in bits]
    index: dict[str, list[int]] = {}
    matches: list[Match] = []
    scores: list[float] = []
    for i, sighting in enumerate(sightings):
        for token in sighting.all_tokens():
            seen = index.setdefault(token, [])
            if token in exact[i]:
                for j in seen:
                    if _owner(exact[i], sightings[j].tokens) == token:
                        matches.append(Match(sighting, sightings[j], 1.0, EXACT, token))
            elif seen and (mine := bits[i]) is not None:
                for j in seen:
                    other = sightings[j]
                    theirs = bits[j]
                    if (
                        theirs is None
                        or other.encoding != sighting.encoding
                        or _owner(blocking[i], other.blocking) != token
                    ):
                        continue
                    total = ones[i] + ones[j]
                    value = 2.0 * (mine & theirs).bit_count() / total if total else 0.0
                    scores.append(value)
                    if _owner(exact[i], other.tokens) is None:
                        matches.append(Match(sighting, other, value, FUZZY, token))
            seen.append(i)
        if progress is not None and (i + 1) % 10_000 == 0:
            progress(i + 1)
    if progress is not None:
        progress(len(sightings))
    return BatchResult(tuple(matches), tuple(scores), {})
