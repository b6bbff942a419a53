"""BatchSealer: RFC 9180 HPKE with one encapsulation per recipient per batch.

Written as a subscriber that only has the ordinary opener (it must open every
payload), as an attacker who moves a payload to another event or relabels it
(it must not open), and as a careless clerk whose file holds one event twice
(key and nonce must never repeat).
"""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from consent import (
    BatchSealer,
    KeyInvalid,
    SealingFailed,
    generate_sealing_key,
    open_fields,
    sealing_context,
)
from consent._sealing import _info

FIELDS = {"postcode": "M1 1AA", "given_name": "Zoë"}
RECIPIENT = "E08000009.revenues"
AGREEMENT = "gm-cross-boundary-move"


def _seal(sealer, key, event_id, fields=FIELDS, recipient=RECIPIENT):  # type: ignore[no-untyped-def]
    return sealer.seal_payload(
        key.public_key(), fields, event_id=event_id, agreement_id=AGREEMENT, recipient=recipient
    )


def test_every_payload_of_a_batch_opens_with_the_ordinary_opener_and_the_rfc_9180_suite():
    keys = [generate_sealing_key() for _ in range(3)]
    sealer = BatchSealer()
    sealed = [(key, f"evt-{i}", _seal(sealer, key, f"evt-{i}")) for i in range(30) for key in keys]
    for key, event_id, payload in sealed:
        assert open_fields(key, payload, event_id=event_id) == FIELDS
        info = _info(
            sealing_context(
                event_id=event_id, agreement_id=AGREEMENT, recipient=RECIPIENT,
                fields=payload.fields,
            )
        )  # fmt: skip
        suite = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)
        assert suite.decrypt(payload.enc + payload.ciphertext, key, info=info)
    # One encapsulation per recipient key: the cost the batch saves.
    assert len({(p.enc) for _, _, p in sealed}) == len(keys)


def test_a_batch_payload_is_bound_to_its_event_agreement_and_recipient():
    key = generate_sealing_key()
    payload = _seal(BatchSealer(), key, "evt-1")
    with pytest.raises(SealingFailed):
        open_fields(key, payload, event_id="evt-2")
    for relabelled in (
        dataclasses.replace(payload, agreement_id="other"),
        dataclasses.replace(payload, recipient="E08000009.other"),
        dataclasses.replace(payload, fields=("given_name",)),
    ):
        with pytest.raises(SealingFailed):
            open_fields(key, relabelled, event_id="evt-1")
    with pytest.raises(SealingFailed):
        open_fields(generate_sealing_key(), payload, event_id="evt-1")


def test_a_context_sealed_twice_in_a_batch_never_reuses_a_key_and_nonce():
    """The same event twice in one file with different values: under one encapsulation
    the two ciphertexts would share key and nonce (GCM then leaks their XOR)."""
    key = generate_sealing_key()
    sealer = BatchSealer()
    first = _seal(sealer, key, "evt-1", {"postcode": "M1 1AA"})
    second = _seal(sealer, key, "evt-1", {"postcode": "M2 2BB"})
    assert first.enc != second.enc
    assert open_fields(key, first, event_id="evt-1") == {"postcode": "M1 1AA"}
    assert open_fields(key, second, event_id="evt-1") == {"postcode": "M2 2BB"}


def test_an_ephemeral_key_is_used_a_bounded_number_of_times():
    key = generate_sealing_key()
    sealer = BatchSealer(max_uses=2)
    encs = [_seal(sealer, key, f"evt-{i}").enc for i in range(5)]
    assert encs[0] == encs[1] != encs[2] == encs[3] != encs[4]


def test_two_batches_never_share_an_encapsulation():
    key = generate_sealing_key()
    assert _seal(BatchSealer(), key, "evt-1").enc != _seal(BatchSealer(), key, "evt-1").enc


def test_a_wrong_key_type_or_a_non_text_field_is_refused():
    sealer = BatchSealer()
    with pytest.raises(KeyInvalid):
        sealer.seal_payload(
            generate_sealing_key(),  # the private key, by mistake
            FIELDS, event_id="e", agreement_id=AGREEMENT, recipient=RECIPIENT,
        )  # fmt: skip
    with pytest.raises(SealingFailed):
        _seal(sealer, generate_sealing_key(), "e", {"postcode": 7})


def test_a_field_map_changed_between_calls_is_sealed_as_it_is_now():
    # The sealer reuses the body of an equal field map; a changed one must not reuse it.
    key = generate_sealing_key()
    sealer = BatchSealer()
    fields = dict(FIELDS)
    first = _seal(sealer, key, "evt-1", fields=fields)
    fields["postcode"] = "M2 2BB"
    second = _seal(sealer, key, "evt-2", fields=fields)
    third = _seal(sealer, key, "evt-3", fields={"uprn": "100"})
    assert open_fields(key, first, event_id="evt-1") == FIELDS
    assert open_fields(key, second, event_id="evt-2") == {**FIELDS, "postcode": "M2 2BB"}
    assert open_fields(key, third, event_id="evt-3") == {"uprn": "100"}


def test_recipients_with_equal_field_maps_each_get_their_own_payload():
    keys = [generate_sealing_key() for _ in range(2)]
    sealer = BatchSealer()
    payloads = [
        _seal(sealer, key, "evt-1", recipient=f"E0800000{i}.revenues") for i, key in enumerate(keys)
    ]
    for i, (key, payload) in enumerate(zip(keys, payloads, strict=True)):
        assert payload.recipient == f"E0800000{i}.revenues"
        assert open_fields(key, payload, event_id="evt-1") == FIELDS
