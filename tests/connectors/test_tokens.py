"""Tokens are keyed, domain-separated, epoch-aware; Bloom encodings track similarity."""

from __future__ import annotations

import csv
import json
import traceback
from collections import defaultdict
from datetime import date
from itertools import combinations
from pathlib import Path

import pytest

from connectors import (
    BLOOM_BITS,
    ConfigInvalid,
    Identity,
    InvalidIdentifier,
    LinkageKey,
    Tokeniser,
    blocking_keys,
    generate_federation,
    generate_linkage_key,
    load_linkage_keys,
    normalise_identity,
    opaque_reference,
)

KEY = LinkageKey(1, b"k" * 32)
PERSON = Identity(
    given_name="robert",
    family_name="smith",
    date_of_birth=date(1980, 3, 4),
    postcode="M1 1AE",
    nhs_number="9434765919",
)


def _dice(a: bytes, b: bytes) -> float:
    x, y = int.from_bytes(a, "little"), int.from_bytes(b, "little")
    return 2 * (x & y).bit_count() / (x.bit_count() + y.bit_count())


def test_tokens_are_deterministic_keyed_and_domain_separated():
    first, again = Tokeniser([KEY]).tokenise(PERSON), Tokeniser([KEY]).tokenise(PERSON)
    assert first == again
    other = Tokeniser([LinkageKey(1, b"o" * 32)]).tokenise(PERSON)
    assert {t.value for t in first.tokens}.isdisjoint({t.value for t in other.tokens})
    assert {t.domain for t in first.tokens} == {"nhs", "name+dob"}
    assert len({t.value for t in first.tokens}) == len(first.tokens)
    assert first.fuzzy is not None and len(first.fuzzy) == BLOOM_BITS // 8
    wire = b"".join(t.value for t in first.tokens + first.blocking_tokens) + first.fuzzy
    for clear in (b"smith", b"robert", b"9434765919", b"1980-03-04", b"M1 1AE"):
        assert clear not in wire


def test_rotation_emits_tokens_under_both_epochs():
    old, new = LinkageKey(1, b"a" * 32), LinkageKey(2, b"b" * 32)
    tokens = Tokeniser([old, new]).tokenise(PERSON)
    assert tokens.epoch == 2
    assert {t.epoch for t in tokens.tokens} == {1, 2}
    assert Tokeniser([old]).tokenise(PERSON).tokens[0] in tokens.tokens


def test_bloom_similarity_follows_string_similarity():
    tokeniser = Tokeniser([KEY])
    same = tokeniser.tokenise(PERSON).fuzzy
    typo = tokeniser.tokenise(Identity(**{**_fields(PERSON), "family_name": "smiht"})).fuzzy
    other = tokeniser.tokenise(
        Identity(given_name="ayesha", family_name="khan", date_of_birth=date(1991, 7, 30),
                 postcode="OL1 3AB")
    ).fuzzy  # fmt: skip
    assert same and typo and other
    # clk-v2's diffusion puts unrelated people near 0.5 rather than 0.3 (docs/linkage.md).
    assert _dice(same, typo) > 0.7 > 0.6 > _dice(same, other)


def _fields(identity: Identity) -> dict[str, object]:
    return {n: getattr(identity, n) for n in identity.__slots__}  # type: ignore[attr-defined]


def test_linkage_keys_file_and_errors(tmp_path: Path):
    path = tmp_path / "keys.json"
    key = generate_linkage_key(3)
    path.write_text(json.dumps({"3": key.secret.hex(), "2": ("00" * 32)}))
    keys = load_linkage_keys(path)
    assert [k.epoch for k in keys] == [2, 3]
    assert key.secret.hex() not in repr(keys)
    with pytest.raises(ConfigInvalid):
        load_linkage_keys("not json")
    with pytest.raises(ConfigInvalid):
        LinkageKey(1, b"short")
    assert opaque_reference(KEY, "E08000006", "rev", "A1") != opaque_reference(
        KEY, "E08000006", "rev", "A2"
    )


def test_a_key_file_written_the_wrong_way_round_never_quotes_the_secret(tmp_path: Path):
    """A careless admin swaps epoch and secret: the refusal, its cause and its
    traceback must not carry the federation's most valuable secret into a log."""
    secret = generate_linkage_key(1).secret.hex()
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({secret: "1"}))
    with pytest.raises(ConfigInvalid) as refused:
        load_linkage_keys(path)
    shown = "".join(traceback.format_exception(refused.value))
    assert secret not in shown and secret[:16] not in shown


@pytest.mark.parametrize(
    ("document", "why"),
    [({"1": "00" * 32, "01": "11" * 32}, "given twice"), ({"-1": "00" * 32}, "epochs run"),
     ({str(2**31): "00" * 32}, "epochs run")],
)  # fmt: skip
def test_epochs_a_token_cannot_carry_or_given_twice_are_refused(
    tmp_path: Path, document: dict[str, str], why: str
):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigInvalid, match=why):
        load_linkage_keys(path)


def test_blocking_keeps_true_pairs_together_under_realistic_errors(tmp_path: Path):
    """Recall of blocking: true pairs sharing at least one exact or blocking token."""
    synth = generate_federation(tmp_path, councils=3, people=400, error_rate=0.6, seed=11)
    truth: dict[str, str] = {}
    with synth.truth.open() as handle:
        for row in csv.DictReader(handle):
            truth[row["ref"]] = row["person_id"]
    tokeniser = Tokeniser([KEY])
    keys_of: dict[str, set[bytes]] = {}
    for path in synth.files.values():
        with path.open() as handle:
            for row in csv.DictReader(handle):
                raw = {"given_name": row["forename"], "family_name": row["surname"],
                       "date_of_birth": row["dob"], "postcode": row["postcode"],
                       "nhs_number": row["nhs_no"], "nino": row["ni_number"]}  # fmt: skip
                try:
                    identity = normalise_identity(raw, date_format="%d/%m/%Y")
                except InvalidIdentifier:
                    continue
                tokens = tokeniser.tokenise(identity)
                keys_of[row["ref"]] = {t.value for t in tokens.tokens + tokens.blocking_tokens}
    by_person: dict[str, list[str]] = defaultdict(list)
    for ref in keys_of:
        by_person[truth[ref]].append(ref)
    pairs = [pair for refs in by_person.values() for pair in combinations(refs, 2)]
    kept = sum(1 for a, b in pairs if keys_of[a] & keys_of[b])
    assert len(pairs) > 100
    assert kept / len(pairs) >= 0.99


def _share_a_blocking_token(a: Identity, b: Identity) -> bool:
    tokeniser = Tokeniser([KEY])
    first = {t.key() for t in tokeniser.tokenise(a).blocking_tokens}
    return bool(first & {t.key() for t in tokeniser.tokenise(b).blocking_tokens})


@pytest.mark.parametrize(
    "clerk",
    [
        # No date of birth and the given name replaced (FEBRL's commonest miss).
        Identity(given_name="annika", family_name="smith", postcode="M1 1AE"),
        # No date of birth, the family name misspelt beyond Soundex's help.
        Identity(given_name="robert", family_name="snaith", postcode="M1 1AE"),
        # Names swapped between columns, no date of birth.
        Identity(given_name="smith", family_name="robert", postcode="M1 1AE"),
        # Names swapped, and two postcode characters transposed.
        Identity(
            given_name="smith",
            family_name="robert",
            date_of_birth=date(1980, 3, 4),
            postcode="M1 1EA",
        ),  # fmt: skip
    ],
)
def test_blocking_survives_what_real_extracts_do_to_a_row(clerk):
    assert _share_a_blocking_token(PERSON, clerk)


def test_blocking_survives_transposed_district_digits_with_both_names_wrong():
    at_home = Identity(given_name="robert", family_name="smith", date_of_birth=date(1980, 3, 4),
                       postcode="M14 4QL")  # fmt: skip
    typed = Identity(given_name="bob", family_name="smyth-jones", date_of_birth=date(1980, 3, 4),
                     postcode="M41 4QL")  # fmt: skip
    assert _share_a_blocking_token(at_home, typed)


def test_blocking_keys_stay_rare_a_shared_surname_alone_meets_nobody():
    """Same surname and postcode sector, different person: no key in common."""
    neighbour = Identity(given_name="alice", family_name="smith", date_of_birth=date(1991, 7, 9),
                         postcode="M1 1ZZ")  # fmt: skip
    assert not _share_a_blocking_token(PERSON, neighbour)


def test_blocking_survives_swapped_names_with_day_and_month_transposed_and_a_move():
    """One ``sx-name+dm`` domain for both names: the family name in the given column still meets."""
    moved = Identity(given_name="smith", family_name="rupert", date_of_birth=date(1980, 4, 3),
                     postcode="LS2 9JT")  # fmt: skip
    assert _share_a_blocking_token(PERSON, moved)


def test_blocking_survives_no_date_a_wrong_name_and_a_wrong_postcode_on_the_same_street():
    home = Identity(given_name="robert", family_name="smith", postcode="M1 1AE",
                    extra={"street": "12 high street", "town": "salford"})  # fmt: skip
    typed = Identity(given_name="bob", family_name="smyht", postcode="M1 1EE",
                     extra={"street": "12 hgih street", "town": "salford"})  # fmt: skip
    assert _share_a_blocking_token(home, typed)


def test_street_locality_key_needs_both_and_takes_the_first_named_locality():
    street = {"street": "12 high street"}
    assert "street+locality" not in {d for d, _ in blocking_keys(Identity(extra=street))}
    assert "street+locality" not in {
        d for d, _ in blocking_keys(Identity(extra={"town": "salford"}))
    }
    both = dict(blocking_keys(Identity(extra={**street, "suburb": "eccles", "town": "salford"})))
    assert both["street+locality"] == "12eeghhirstt|adflors"  # sorted characters; the town


def test_street_locality_key_carries_no_name():
    """An address key: the same for everyone on the street, whatever their names or birth."""
    extra = {"street": "12 high street", "town": "salford"}
    one = dict(blocking_keys(Identity(given_name="ann", family_name="lee", extra=extra)))
    two = dict(blocking_keys(Identity(given_name="bo", family_name="kay", extra=extra)))
    assert one["street+locality"] == two["street+locality"]


def test_neighbours_on_one_street_with_other_names_share_only_the_street():
    extra = {"street": "12 high street", "town": "salford"}
    a = Identity(given_name="robert", family_name="smith", date_of_birth=date(1980, 3, 4),
                 postcode="M1 1AE", extra=extra)  # fmt: skip
    b = Identity(given_name="alice", family_name="jones", date_of_birth=date(1991, 7, 9),
                 postcode="M1 1AE", extra=extra)  # fmt: skip
    shared = set(blocking_keys(a)) & set(blocking_keys(b))
    assert {d for d, _ in shared} == {"street+locality"}


def test_a_linkage_key_pickles_as_its_epoch_and_secret():
    import pickle

    key = generate_linkage_key(4)
    again = pickle.loads(pickle.dumps(key))
    assert again == key
    assert again.mac("nhs", "9434765919") == key.mac("nhs", "9434765919")
