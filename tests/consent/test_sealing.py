"""Sealed payloads: bound to event, agreement, recipient and declared field names.

Written as an attacker who can rewrite the labels beside a ciphertext (a broker
operator, anyone on the topic) and as a council that seals more than it declares.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent import (
    SealingFailed,
    generate_sealing_key,
    open_fields,
    seal,
    seal_payload,
    sealing_context,
)
from schemas import SealedPayload

FIELDS = {"postcode": "M1 1AA", "given_name": "Zoë"}
RECIPIENT = "E08000009.revenues"
AGREEMENT = "gm-cross-boundary-move"


def _sealed(key, fields=FIELDS, *, event_id="evt-9"):  # type: ignore[no-untyped-def]
    return seal_payload(
        key.public_key(), fields, event_id=event_id, agreement_id=AGREEMENT, recipient=RECIPIENT
    )


def test_a_payload_opens_as_labelled_and_declares_its_sorted_field_names():
    key = generate_sealing_key()
    payload = _sealed(key)
    assert (payload.recipient, payload.agreement_id) == (RECIPIENT, AGREEMENT)
    assert payload.fields == ("given_name", "postcode")
    assert open_fields(key, payload, event_id="evt-9") == FIELDS


@pytest.mark.parametrize(
    "relabel",
    [
        {"agreement_id": "gm-multiple-disadvantage"},
        {"recipient": "E08000003.housing"},
        {"fields": ("given_name",)},
        {"fields": ("given_name", "postcode", "nhs_number")},
        {"fields": ("nhs_number", "postcode")},
    ],
    ids=["other-agreement", "other-recipient", "fewer-fields", "more-fields", "renamed-field"],
)
def test_a_relabelled_payload_does_not_open(relabel):
    key = generate_sealing_key()
    payload = dataclasses.replace(_sealed(key), **relabel)
    with pytest.raises(SealingFailed) as caught:
        open_fields(key, payload, event_id="evt-9")
    assert caught.value.reason == "sealing-failed"


def test_a_payload_moved_to_another_event_does_not_open():
    key = generate_sealing_key()
    with pytest.raises(SealingFailed):
        open_fields(key, _sealed(key), event_id="evt-10")


def test_a_payload_for_another_recipient_key_does_not_open():
    with pytest.raises(SealingFailed):
        open_fields(generate_sealing_key(), _sealed(generate_sealing_key()), event_id="evt-9")


def test_a_sealer_that_declares_postcode_but_seals_nhs_number_is_caught():
    """The context binds the declared names, but a dishonest sealer can bind a lie:
    the opened names are compared with the declared ones, and refused if they differ."""
    key = generate_sealing_key()
    declared = ("postcode",)
    context = sealing_context(
        event_id="evt-9", agreement_id=AGREEMENT, recipient=RECIPIENT, fields=declared
    )
    enc, ciphertext = seal(key.public_key(), b'{"nhs_number":"9434765919"}', aad=context)
    lying = SealedPayload(RECIPIENT, AGREEMENT, enc, ciphertext, declared)
    with pytest.raises(SealingFailed) as caught:
        open_fields(key, lying, event_id="evt-9")
    assert caught.value.reason == "fields-mismatch"
    assert "9434765919" not in str(caught.value)


def test_a_payload_sealed_under_the_old_event_id_only_context_does_not_open():
    key = generate_sealing_key()
    enc, ciphertext = seal(key.public_key(), b'{"postcode":"M1 1AA"}', aad="evt-9")
    old = SealedPayload(RECIPIENT, AGREEMENT, enc, ciphertext, ("postcode",))
    with pytest.raises(SealingFailed):
        open_fields(key, old, event_id="evt-9")


def test_contexts_cannot_collide_by_moving_text_between_labels():
    a = sealing_context(event_id="e1", agreement_id="a,b", recipient="r", fields=())
    b = sealing_context(event_id="e1,a", agreement_id="b", recipient="r", fields=())
    assert a != b
    assert sealing_context(
        event_id="e", agreement_id="a", recipient="r", fields=["b", "a"]
    ) == sealing_context(event_id="e", agreement_id="a", recipient="r", fields=["a", "b"])


@pytest.mark.parametrize("plaintext", [b"\xff", b"[1]", b'{"a": 1}'])
def test_what_is_not_a_map_of_text_fields_is_refused(plaintext):
    key = generate_sealing_key()
    context = sealing_context(event_id="e", agreement_id=AGREEMENT, recipient=RECIPIENT, fields=())
    enc, ciphertext = seal(key.public_key(), plaintext, aad=context)
    with pytest.raises(SealingFailed):
        open_fields(key, SealedPayload(RECIPIENT, AGREEMENT, enc, ciphertext, ()), event_id="e")


def test_only_text_values_are_sealed():
    with pytest.raises(SealingFailed):
        _sealed(generate_sealing_key(), {"n": 1})  # type: ignore[dict-item]


@given(
    ids=st.tuples(st.text(max_size=12), st.text(max_size=12), st.text(max_size=12)),
    names=st.lists(st.text(max_size=8), max_size=4),
)
def test_the_context_is_the_canonical_json_array_whatever_the_texts(ids, names):
    # The context is written without json.dumps for speed: it must be the same bytes.
    event_id, agreement_id, recipient = ids
    expected = json.dumps(
        [event_id, agreement_id, recipient, sorted(names)], separators=(",", ":"), ensure_ascii=True
    )
    context = sealing_context(
        event_id=event_id, agreement_id=agreement_id, recipient=recipient, fields=names
    )
    assert context == b"fedbroker/seal-context/v3\x00" + expected.encode("ascii")


def test_a_context_of_other_values_than_text_is_still_their_json():
    context = sealing_context(event_id=7, agreement_id="a", recipient="r", fields=["f"])  # type: ignore[arg-type]
    assert context.endswith(b'[7,"a","r",["f"]]')
