"""Sealing records into signed envelopes and opening them: the one signing API.

Every signed thing on the wire (events, consent records, notifications) travels
as a ``SignedEnvelope``: the record's exact Avro bytes and an Ed25519 signature
over a domain tag, the writer schema's fingerprint and those bytes (DESIGN
section 10). Opening checks, in order of cost: the message size (in the codec),
the domain, the signer, the signature over the bytes as they arrived, and only
then decodes the body. Nothing is re-encoded, so nothing depends on two
implementations writing the same record the same way.

Checkpoints and the directory sign JSON, not Avro: ``sign_detached`` and
``verify_detached`` give them the same domain-tagged input, with the fingerprint
``NOT_AVRO``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consent._errors import SignatureInvalid
from consent._keys import PublicKey, sign, verify_signature
from schemas import (
    DOMAIN_RECORDS,
    NOT_AVRO,
    Codec,
    Record,
    SignatureDomain,
    SignedEnvelope,
    signing_input,
)

__all__ = ["KeyForSigner", "open_envelope", "seal_envelope", "sign_detached", "verify_detached"]


KeyForSigner = Callable[[str], PublicKey | None]
"""The public key a verifier trusts for a signer id, or None for a stranger.

It may also raise (a broker raises its own refusal when an event's signer is
not the council whose topic it came from)."""


def seal_envelope(
    domain: SignatureDomain,
    record: Any,
    key: Ed25519PrivateKey,
    signer: str,
    *,
    codec: Codec,
) -> bytes:
    """The framed ``SignedEnvelope`` message of ``record``, signed by ``signer``.

    Args:
        domain: what the record is; must be the domain of its type.
        record: a CitizenEvent, ConsentRecord or MatchNotification.
        key: the signer's Ed25519 private key.
        signer: the signer's directory member id.
        codec: encodes the body and the envelope (its size limit applies).

    Raises:
        SignatureInvalid: reason ``wrong-domain`` if the record is not of ``domain``.
        EncodeError: the record cannot be encoded.
    """
    if not isinstance(record, DOMAIN_RECORDS.get(domain, type(None))):
        raise SignatureInvalid(
            f"a {type(record).__name__} cannot be signed as {domain}", reason="wrong-domain"
        )
    fingerprint, body = codec.encode_body(cast(Record, record))
    signature = sign(key, signing_input(domain, fingerprint, body))
    return codec.encode(SignedEnvelope(domain.value, signer, fingerprint, body, signature))


def open_envelope(
    data: bytes,
    domain: SignatureDomain,
    key_for_signer: KeyForSigner,
    *,
    codec: Codec,
) -> tuple[Any, SignedEnvelope]:
    """Verify a ``SignedEnvelope`` message over its exact bytes, then decode its body.

    Args:
        data: the framed envelope, as it arrived.
        domain: the domain the reader expects (an events topic expects events).
        key_for_signer: the trusted public key of a signer id, or None.
        codec: decodes the envelope and the body, and caps their size.

    Returns:
        ``(record, envelope)``; the record's type is ``DOMAIN_RECORDS[domain]``.

    Raises:
        DecodeError: the envelope or the body is not valid Avro (a leaf, with its reason).
        UnknownSchema: the signed fingerprint names no current schema.
        SignatureInvalid: reason ``wrong-domain`` (signed as another kind),
            ``unknown-signer`` (no trusted key) or ``signature-invalid``.
    """
    envelope = codec.decode_as(data, SignedEnvelope)
    if envelope.domain != domain.value:
        raise SignatureInvalid(f"envelope is not a {domain} envelope", reason="wrong-domain")
    public_key = key_for_signer(envelope.signer)
    if public_key is None:
        raise SignatureInvalid("envelope signer is not trusted here", reason="unknown-signer")
    verify_signature(
        public_key,
        signing_input(domain, envelope.writer_fingerprint, envelope.body),
        envelope.signature,
    )
    kind = DOMAIN_RECORDS[domain]
    return codec.decode_body(envelope.writer_fingerprint, envelope.body, kind), envelope


def sign_detached(key: Ed25519PrivateKey, domain: SignatureDomain, body: bytes) -> bytes:
    """An Ed25519 signature over a non-Avro ``body`` (checkpoint or directory) in ``domain``."""
    return sign(key, signing_input(domain, NOT_AVRO, body))


def verify_detached(
    public_key: PublicKey, domain: SignatureDomain, body: bytes, signature: bytes
) -> None:
    """Check what ``sign_detached`` made.

    Raises:
        SignatureInvalid: the signature does not verify for this domain and body.
    """
    verify_signature(public_key, signing_input(domain, NOT_AVRO, body), signature)
