"""The operator's attacks (bench/privacy.py), run small: hardened encodings and tokens hold.

The attacks are the bench's own; here they run on fewer people, and the test
also requires them to break the old encoding, so a broken attack cannot make
the hardened one look safe.
"""

from __future__ import annotations

import pytest

from bench._privacy_people import people, surname_list
from bench.privacy import (
    AIM_HARDENED,
    AIM_LEGACY,
    attack_blocking,
    attack_encodings,
    bench_key,
)
from connectors import ENCODING

pytestmark = pytest.mark.slow

PEOPLE = 2000
BLOCKING_PEOPLE = 4000
SEED = 20261201


@pytest.fixture(scope="module")
def surnames():
    return surname_list()


@pytest.fixture(scope="module")
def crowd(surnames):
    return people(PEOPLE, seed=SEED, surnames=surnames)


def test_pattern_mining_reidentifies_the_old_encoding_and_not_the_hardened(crowd, surnames):
    plan = {("clk-v1", "enumerate"), (ENCODING, "enumerate"), (ENCODING, "mine")}
    outcomes = attack_encodings(crowd, surnames, bench_key(SEED), min_support=5, plan=plan)
    by = {(o.target, o.attack): o for o in outcomes}
    legacy = by["clk-v1", "enumerate"]
    assert legacy.reidentified_top >= AIM_LEGACY  # the attack is real
    assert legacy.labels_correct >= 0.9
    assert legacy.bigrams_recovered >= 100
    for attack in ("enumerate", "mine"):
        hardened = by[ENCODING, attack]
        assert hardened.reidentified_top <= AIM_HARDENED, attack
        assert hardened.bigrams_recovered == 0, attack


def test_blocking_tokens_give_frequency_alignment_nothing(surnames):
    crowd = people(BLOCKING_PEOPLE, seed=SEED + 1, surnames=surnames)
    public = people(2 * BLOCKING_PEOPLE, seed=SEED + 2, surnames=surnames)
    outcomes = attack_blocking(crowd, public, surnames, bench_key(SEED))
    current = [o for o in outcomes if o.target == "blocking-v2"]
    assert {o.attack for o in current} == {"frequency", "linked"}
    for outcome in current:
        assert outcome.reidentified_top <= AIM_HARDENED, outcome.attack
    legacy = [o for o in outcomes if o.target == "blocking-v1"]
    assert max(o.labels for o in legacy) > 0  # the same attack does label old tokens
