"""The matcher: exact certainty, fuzzy at threshold, one report per pair, batch = stream."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from broker import EXACT, FUZZY, Matcher, TokenState, dedupe_matches, match_batch, run_batch
from tests.broker.conftest import T0, bloom, synthetic_blocks

NINO, NHS, BLOCK, BLOCK2 = "nino:1:aa", "nhs:1:bb", "soundex+yob:1:cc", "dmeta+pc:1:dd"


def test_exact_token_matches_with_certainty_even_with_different_encodings(sighting_factory):
    a = sighting_factory("a", tokens=(NINO,), fuzzy=bloom([1, 2, 3]))
    b = sighting_factory("b", tokens=(NINO,), fuzzy=bloom([7, 8, 9]), source_council="E08000006")
    first = Matcher(0.9).observe(None, NINO, a, T0)
    assert first.matches == () and first.state.sighting_count() == 1
    second = Matcher(0.9).observe(first.state, NINO, b, T0)
    (match,) = second.matches
    assert (match.score, match.method, match.token) == (1.0, EXACT, NINO)
    assert match.event_ids == ("a", "b") and match.other is a


def test_blocking_token_matches_only_at_threshold_and_keeps_score(sighting_factory):
    grams = list(range(40))
    a = sighting_factory("a", blocking=(BLOCK,), fuzzy=bloom(grams))
    b = sighting_factory("b", blocking=(BLOCK,), fuzzy=bloom(grams[:-4] + [91, 92, 93, 94]))
    state = Matcher().observe(None, BLOCK, a, None).state
    seen = Matcher(0.8).observe(state, BLOCK, b, None)
    (match,) = seen.matches
    assert match.method == FUZZY and 0.8 <= match.score < 1.0
    assert seen.scores == (match.score,)
    strict = Matcher(match.score + 0.01).observe(state, BLOCK, b, None)
    assert strict.matches == () and strict.scores == (match.score,)


def test_a_pair_found_through_several_tokens_counts_once(sighting_factory):
    enc = bloom(list(range(30)))
    a = sighting_factory("a", tokens=(NHS, NINO), blocking=(BLOCK, BLOCK2), fuzzy=enc)
    b = sighting_factory("b", tokens=(NHS, NINO), blocking=(BLOCK, BLOCK2), fuzzy=enc)
    result = run_batch([a, b], Matcher(0.5))
    assert len(result.matches) == 1
    assert result.matches[0].method == EXACT and result.matches[0].token == min(NHS, NINO)
    # the fuzzy score is still sampled once, for the threshold fit
    assert result.scores == (1.0,)


def test_fuzzy_pair_owned_by_smallest_shared_blocking_token(sighting_factory):
    enc = bloom(list(range(30)))
    a = sighting_factory("a", blocking=(BLOCK, BLOCK2), fuzzy=enc)
    b = sighting_factory("b", blocking=(BLOCK, BLOCK2), fuzzy=enc)
    (match,) = match_batch([a, b], 0.5)
    assert match.token == min(BLOCK, BLOCK2)


def test_no_one_to_one_assignment_and_same_council_may_match(sighting_factory):
    events = [sighting_factory(f"e{i}", tokens=(NINO,)) for i in range(4)]
    assert len(match_batch(events)) == 6  # every pair of the person's four events


def test_replay_finds_nothing_and_changes_nothing(sighting_factory):
    a = sighting_factory("a", tokens=(NINO,))
    b = sighting_factory("b", tokens=(NINO,))
    state = TokenState((a, b))
    again = Matcher().observe(state, NINO, b, None)
    assert again.matches == () and again.state == state


def test_expired_sightings_neither_match_nor_stay(sighting_factory):
    a = sighting_factory("a", tokens=(NINO,), expires_at=T0 + timedelta(days=1))
    b = sighting_factory("b", tokens=(NINO,), occurred_at=T0 + timedelta(days=5))
    seen = Matcher().observe(TokenState((a,)), NINO, b, T0 + timedelta(days=5))
    assert seen.matches == () and seen.state.event_ids() == {"b"}


def test_missing_encoding_is_never_fuzzy_matched(sighting_factory):
    a = sighting_factory("a", blocking=(BLOCK,))
    b = sighting_factory("b", blocking=(BLOCK,), fuzzy=bloom([1]))
    assert match_batch([a, b], 0.0) == ()


def test_batch_is_stream_in_any_partitioning(sighting_factory):
    """Observing token by token in separate 'partitions' gives the batch's pairs."""
    records = synthetic_blocks(seed=5, blocks=40)
    sightings = [
        sighting_factory(
            f"e{i}", blocking=(block,), tokens=(f"nino:1:{p}",) if i % 3 else (), fuzzy=enc
        )
        for i, (p, block, enc) in enumerate(records)
    ]
    batch = {m.pair_id for m in match_batch(sightings, 0.7)}
    partitions: list[dict[str, TokenState]] = [{}, {}, {}]
    streamed = []
    matcher = Matcher(0.7)
    for s in sightings:
        for token in s.all_tokens():
            part = partitions[hash(token) % 3]
            seen = matcher.observe(part.get(token), token, s, None)
            part[token] = seen.state
            streamed.extend(seen.matches)
    assert len(streamed) == len({m.pair_id for m in streamed})  # each pair once
    assert {m.pair_id for m in streamed} == batch


def test_dedupe_prefers_exact(sighting_factory):
    a = sighting_factory("a", tokens=(NINO,), blocking=(BLOCK,), fuzzy=bloom([1, 2]))
    b = sighting_factory("b", tokens=(NINO,), blocking=(BLOCK,), fuzzy=bloom([1, 2]))
    exact = match_batch([a, b])[0]
    fuzzy = type(exact)(b, a, 0.9, FUZZY, BLOCK)
    assert dedupe_matches([fuzzy, exact]) == (exact,)
    assert dedupe_matches([exact, fuzzy]) == (exact,)


@pytest.mark.parametrize("seed", [1, 2])
def test_order_does_not_change_the_pairs(seed, sighting_factory):
    records = synthetic_blocks(seed=seed, blocks=20)
    sightings = [
        sighting_factory(f"e{i}", blocking=(b,), fuzzy=enc) for i, (_, b, enc) in enumerate(records)
    ]
    shuffled = list(sightings)
    random.Random(seed).shuffle(shuffled)
    assert {m.pair_id for m in match_batch(sightings, 0.7)} == {
        m.pair_id for m in match_batch(shuffled, 0.7)
    }
