"""Signed envelopes: a signature over a domain tag, a fingerprint and the exact body bytes.

Written as an attacker who can write to a topic: who alters a body, relabels a
signed body as another kind, swaps the fingerprint, or re-encodes a record into
other but equivalent bytes. Each must fail before the body is believed.
"""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, datetime

import pytest
from fastavro import schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from consent import (
    SignatureInvalid,
    generate_signing_key,
    open_envelope,
    seal_envelope,
    sign,
    sign_detached,
    verify_detached,
)
from schemas import (
    CitizenEvent,
    Codec,
    EventType,
    LinkageToken,
    MatchedEvent,
    MatchNotification,
    MessageTooLarge,
    SignatureDomain,
    SignedEnvelope,
    UnknownSchema,
    WrongRecordType,
    load_versions,
    signing_input,
)
from schemas._convert import to_datum

CODEC = Codec()
WHEN = datetime(2026, 9, 7, 10, 30, tzinfo=UTC)
COUNCIL = "E08000006"
KEY = generate_signing_key()


def _event(**changes: object) -> CitizenEvent:
    fields: dict[str, object] = {
        "event_id": "0f" * 16, "source_council": COUNCIL, "source_system": "revenues",
        "event_type": EventType.ADDRESS_CHANGE, "occurred_at": WHEN, "published_at": WHEN,
        "key_epoch": 1, "source_ref": "ab" * 16,
        "tokens": (LinkageToken("nhs", 1, b"\x01" * 32),),
        "attributes": {"tenure": "owner", "move_direction": "in"},
    }  # fmt: skip
    fields.update(changes)
    return CitizenEvent(**fields)  # type: ignore[arg-type]


def _notification() -> MatchNotification:
    return MatchNotification(
        "ntf-1", "gm-cross-boundary-move", "p", "E08000009.revenues", WHEN,
        (MatchedEvent("e" * 32, COUNCIL, "ref", EventType.ADDRESS_CHANGE, WHEN),), 1.0, "exact",
    )  # fmt: skip


def _keys(signer: str):  # type: ignore[no-untyped-def]
    return KEY.public_key() if signer == COUNCIL else None


def _open(data: bytes, domain: SignatureDomain = SignatureDomain.EVENT):  # type: ignore[no-untyped-def]
    return open_envelope(data, domain, _keys, codec=CODEC)


def _reframe(data: bytes, **changes: object) -> bytes:
    envelope = CODEC.decode_as(data, SignedEnvelope)
    return CODEC.encode(dataclasses.replace(envelope, **changes))


def test_a_sealed_event_opens_to_the_same_record_with_its_envelope():
    data = seal_envelope(SignatureDomain.EVENT, _event(), KEY, COUNCIL, codec=CODEC)
    record, envelope = _open(data)
    assert record == _event()
    assert envelope.domain == "fedbroker/event/v3" and envelope.signer == COUNCIL
    assert envelope.writer_fingerprint == load_versions()["CitizenEvent"][-1].fingerprint
    assert envelope.body == CODEC.encode_body(_event())[1]


def test_a_tampered_body_fails():
    data = seal_envelope(SignatureDomain.EVENT, _event(), KEY, COUNCIL, codec=CODEC)
    body = CODEC.decode_as(data, SignedEnvelope).body
    other = CODEC.encode_body(_event(source_ref="cd" * 16))[1]
    assert len(other) == len(body) and other != body
    with pytest.raises(SignatureInvalid) as caught:
        _open(_reframe(data, body=other))
    assert caught.value.reason == "signature-invalid"


def test_a_notification_presented_as_an_event_fails():
    """The broker signs notifications; a broker key trusted for events (or a council
    key reused as a broker's) must not turn a notification into an event."""
    data = seal_envelope(SignatureDomain.NOTIFICATION, _notification(), KEY, COUNCIL, codec=CODEC)
    with pytest.raises(SignatureInvalid) as caught:
        _open(data, SignatureDomain.EVENT)
    assert caught.value.reason == "wrong-domain"
    relabelled = _reframe(data, domain=SignatureDomain.EVENT.value)
    with pytest.raises(SignatureInvalid) as caught:
        _open(relabelled, SignatureDomain.EVENT)
    assert caught.value.reason == "signature-invalid"
    record, _ = _open(data, SignatureDomain.NOTIFICATION)
    assert record == _notification()


def test_a_consent_record_body_under_the_event_domain_is_not_an_event():
    """Even a signer that signs a consent body in the event domain gets no event out of it."""
    from schemas import ConsentRecord, ConsentState

    consent = ConsentRecord(
        "r" * 32, COUNCIL, (LinkageToken("nhs", 1, b"\x01" * 32),), "*",
        ConsentState.OBJECTED, WHEN, WHEN, 1,
    )  # fmt: skip
    fingerprint, body = CODEC.encode_body(consent)
    signature = sign(KEY, signing_input(SignatureDomain.EVENT, fingerprint, body))
    data = CODEC.encode(
        SignedEnvelope(SignatureDomain.EVENT.value, COUNCIL, fingerprint, body, signature)
    )
    with pytest.raises(WrongRecordType):
        _open(data)


def test_a_wrong_fingerprint_fails():
    data = seal_envelope(SignatureDomain.EVENT, _event(), KEY, COUNCIL, codec=CODEC)
    envelope = CODEC.decode_as(data, SignedEnvelope)
    for fingerprint in (
        load_versions()["CitizenEvent"][1].fingerprint,  # the old major line
        load_versions()["ConsentRecord"][-1].fingerprint,
        envelope.writer_fingerprint ^ 1,
    ):
        with pytest.raises(SignatureInvalid):
            _open(_reframe(data, writer_fingerprint=fingerprint))


def test_a_re_encoded_but_equivalent_body_fails():
    """Other bytes that decode to the same record (attributes written in another
    order) are not what was signed: the verifier checks bytes, not meaning."""
    event = _event()
    data = seal_envelope(SignatureDomain.EVENT, event, KEY, COUNCIL, codec=CODEC)
    envelope = CODEC.decode_as(data, SignedEnvelope)
    _, datum = to_datum(event)
    datum["attributes"] = dict(reversed(list(datum["attributes"].items())))
    out = io.BytesIO()
    schemaless_writer(out, load_versions()["CitizenEvent"][-1].parsed, datum)
    equivalent = out.getvalue()
    assert equivalent != envelope.body
    assert CODEC.decode_body(envelope.writer_fingerprint, equivalent, CitizenEvent) == event
    with pytest.raises(SignatureInvalid):
        _open(_reframe(data, body=equivalent))


def test_a_signer_without_a_trusted_key_or_with_another_key_fails():
    data = seal_envelope(SignatureDomain.EVENT, _event(), KEY, "E08000009", codec=CODEC)
    with pytest.raises(SignatureInvalid) as caught:
        _open(data)
    assert caught.value.reason == "unknown-signer"
    forged = seal_envelope(SignatureDomain.EVENT, _event(), generate_signing_key(), COUNCIL,
                           codec=CODEC)  # fmt: skip
    with pytest.raises(SignatureInvalid):
        _open(forged)


def test_the_size_cap_is_checked_before_the_signature_or_the_body(monkeypatch):
    import consent._envelope as envelope_module

    data = seal_envelope(SignatureDomain.EVENT, _event(), KEY, COUNCIL, codec=CODEC)

    def never(*args: object) -> None:
        raise AssertionError("a signature was checked on an oversized message")

    monkeypatch.setattr(envelope_module, "verify_signature", never)
    with pytest.raises(MessageTooLarge):
        open_envelope(data, SignatureDomain.EVENT, _keys, codec=Codec(max_message_bytes=100))


def test_the_body_is_decoded_only_after_the_signature_and_nothing_is_re_encoded(monkeypatch):
    data = seal_envelope(SignatureDomain.EVENT, _event(), KEY, COUNCIL, codec=CODEC)
    codec = Codec()

    def never(*args: object) -> None:
        raise AssertionError("the verifier encoded a record")

    monkeypatch.setattr(codec, "encode", never)
    monkeypatch.setattr(codec, "encode_body", never)
    decoded: list[str] = []
    real = codec.decode_body
    monkeypatch.setattr(codec, "decode_body", lambda *a: decoded.append("body") or real(*a))
    assert open_envelope(data, SignatureDomain.EVENT, _keys, codec=codec)[0] == _event()
    assert decoded == ["body"]
    tampered = _reframe(data, signature=b"\x00" * 64)
    decoded.clear()
    with pytest.raises(SignatureInvalid):
        open_envelope(tampered, SignatureDomain.EVENT, _keys, codec=codec)
    assert decoded == []


def test_a_body_naming_an_unknown_schema_is_refused_after_its_signature():
    fingerprint, body = 0x1234, CODEC.encode_body(_event())[1]
    signature = sign(KEY, signing_input(SignatureDomain.EVENT, fingerprint, body))
    data = CODEC.encode(SignedEnvelope("fedbroker/event/v3", COUNCIL, fingerprint, body, signature))
    with pytest.raises(UnknownSchema):
        _open(data)


def test_a_record_cannot_be_sealed_under_another_kinds_domain():
    with pytest.raises(SignatureInvalid) as caught:
        seal_envelope(SignatureDomain.EVENT, _notification(), KEY, COUNCIL, codec=CODEC)
    assert caught.value.reason == "wrong-domain"
    with pytest.raises(SignatureInvalid):
        seal_envelope(SignatureDomain.CHECKPOINT, _event(), KEY, COUNCIL, codec=CODEC)


def test_detached_signatures_are_bound_to_their_domain():
    """A checkpoint signature is not a directory signature, nor an undomained one."""
    body = b'{"seq": 4}'
    signature = sign_detached(KEY, SignatureDomain.CHECKPOINT, body)
    verify_detached(KEY.public_key(), SignatureDomain.CHECKPOINT, body, signature)
    with pytest.raises(SignatureInvalid):
        verify_detached(KEY.public_key(), SignatureDomain.DIRECTORY, body, signature)
    with pytest.raises(SignatureInvalid):
        verify_detached(KEY.public_key(), SignatureDomain.CHECKPOINT, body, sign(KEY, body))


def test_an_audit_checkpoint_signed_without_the_domain_fails_verification():
    """The old checkpoint signature (over ``audit_bytes`` alone) no longer verifies."""
    from consent import AuditChain, ChainHead, audit_bytes, verify_audit
    from consent._audit_verify import ProblemKind

    chain = AuditChain(ChainHead("p0"), KEY)
    chain.start(WHEN)
    checkpoint = chain.checkpoint(WHEN, reason="test")
    assert verify_audit([checkpoint], KEY.public_key()).ok
    undomained = dataclasses.replace(checkpoint, signature=sign(KEY, audit_bytes(checkpoint)))
    report = verify_audit([undomained], KEY.public_key())
    assert [p.kind for p in report.problems] == [ProblemKind.BAD_CHECKPOINT]


def test_a_directory_signed_in_another_domain_is_refused(tmp_path):
    """The directory's signature is in the directory domain: the old undomained-v1
    prefix, or a checkpoint signature over the same text, does not verify."""
    import base64
    import json

    from consent import DirectoryInvalid, build_dev_federation, verify_directory
    from consent._directory_signing import SIGNED_DIRECTORY_FORMAT

    federation = build_dev_federation(tmp_path, councils=["E08000003", "E08000006"])
    text = federation.document_path.read_text()
    authority = federation.signing_key("gmca")
    now = datetime.now(UTC)
    assert verify_directory(federation.directory_path.read_bytes(),
                            trust_anchor=federation.trust_anchor, now=now)  # fmt: skip
    for signature in (
        sign(authority, b"fedbroker/directory/v1\x00" + text.encode()),
        sign_detached(authority, SignatureDomain.CHECKPOINT, text.encode()),
    ):
        envelope = {"format": SIGNED_DIRECTORY_FORMAT, "document": text,
                    "signature": base64.b64encode(signature).decode()}  # fmt: skip
        with pytest.raises(DirectoryInvalid) as caught:
            verify_directory(json.dumps(envelope).encode(), trust_anchor=federation.trust_anchor,
                             now=now)  # fmt: skip
        assert caught.value.reason == "directory-signature-invalid"


_SEALED = seal_envelope(SignatureDomain.EVENT, _event(), KEY, COUNCIL, codec=CODEC)


@given(st.integers(0, len(_SEALED) - 1), st.integers(1, 255))
@settings(max_examples=300, deadline=None)
def test_no_single_byte_change_anywhere_in_the_message_is_accepted(position, xor):
    """Header, domain, signer, fingerprint, body or signature: an attacker who flips
    any byte gets a typed refusal, never a record."""
    from schemas import FedbrokerError

    data = bytearray(_SEALED)
    data[position] ^= xor
    with pytest.raises(FedbrokerError):
        _open(bytes(data))
