"""Sealing fields to one recipient: HPKE (RFC 9180) in base mode.

The suite is DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, as provided
by ``cryptography.hazmat.primitives.hpke`` (cryptography 47+). Only the holder of
the recipient's X25519 private key can open a payload; the broker, which routes
it, cannot (DESIGN section 2).

The sealing context is bound through HPKE's ``info`` parameter, which enters
the key schedule. For payload fields (``seal_payload``/``open_fields``) the
context is the event id, the agreement id, the recipient id and the sorted field
names (DESIGN section 10): a payload moved to another event, relabelled to
another agreement or recipient, or whose declared field names were changed,
does not open. (cryptography's public single-shot API exposes ``info`` but not
the AEAD's associated data; for binding a context string the two are
equivalent.) ``enc`` is the 32-byte encapsulated ephemeral public key, kept
apart because ``SealedPayload`` has a field for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from json.encoder import encode_basestring_ascii

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from consent._errors import KeyInvalid, SealingFailed
from schemas import SealedPayload

__all__ = ["SEALING_SUITE", "open_fields", "open_sealed", "seal", "seal_payload", "sealing_context"]

SEALING_SUITE = "HPKE-base DHKEM(X25519,HKDF-SHA256) HKDF-SHA256 AES-256-GCM"
"""What ``seal`` uses, as a label for documentation and the directory."""

_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)
_ENC_LENGTH = 32
_INFO_PREFIX = b"fedbroker/seal/v1\x00"
_CONTEXT_TAG = b"fedbroker/seal-context/v3\x00"


def _info(aad: str | bytes) -> bytes:
    return _INFO_PREFIX + (aad.encode("utf-8") if isinstance(aad, str) else aad)


def seal(
    recipient_public_key: X25519PublicKey, plaintext: bytes, *, aad: str | bytes
) -> tuple[bytes, bytes]:
    """Seal ``plaintext`` to one recipient, bound to ``aad`` (the event id).

    Returns:
        ``(enc, ciphertext)``: the encapsulated key and the AEAD ciphertext with tag.
    """
    if not isinstance(recipient_public_key, X25519PublicKey):
        raise KeyInvalid("sealing needs the recipient's X25519 public key")
    sealed = _SUITE.encrypt(plaintext, recipient_public_key, info=_info(aad))
    return sealed[:_ENC_LENGTH], sealed[_ENC_LENGTH:]


def open_sealed(
    private_key: X25519PrivateKey, enc: bytes, ciphertext: bytes, *, aad: str | bytes
) -> bytes:
    """Open a payload sealed by ``seal``.

    Raises:
        SealingFailed: wrong key, wrong ``aad`` or altered bytes (indistinguishable).
    """
    if not isinstance(private_key, X25519PrivateKey):
        raise KeyInvalid("opening needs an X25519 private key")
    if len(enc) != _ENC_LENGTH:
        raise SealingFailed("encapsulated key has the wrong length")
    try:
        return _SUITE.decrypt(enc + ciphertext, private_key, info=_info(aad))
    except (InvalidTag, ValueError) as exc:
        raise SealingFailed("sealed payload does not open") from exc


def sealing_context(
    *, event_id: str, agreement_id: str, recipient: str, fields: Iterable[str]
) -> bytes:
    """The context a payload's fields are sealed under (HPKE ``info``, after the prefix).

    A JSON array, so no choice of ids can make two contexts collide; a version
    tag of its own, so a payload sealed under the old event-id-only context
    never opens under this one.
    """
    names = sorted(fields)
    ids = (event_id, agreement_id, recipient)
    if all(type(x) is str for x in (*ids, *names)):
        # What json.dumps writes for these texts, without its per-call set-up:
        # every payload of every event pays for this (about half its cost).
        quoted = ",".join(map(encode_basestring_ascii, ids))
        text = "[" + quoted + ",[" + ",".join(map(encode_basestring_ascii, names)) + "]]"
    else:
        text = json.dumps([*ids, names], separators=(",", ":"), ensure_ascii=True)
    return _CONTEXT_TAG + text.encode("ascii")


def seal_payload(
    recipient_public_key: X25519PublicKey,
    fields: Mapping[str, str],
    *,
    event_id: str,
    agreement_id: str,
    recipient: str,
) -> SealedPayload:
    """Seal a small map of fields to one recipient under one agreement, for one event.

    The fields travel as canonical JSON (sorted keys, UTF-8), one encoding for
    every sealer and opener. Seal only what the agreement allows
    (``Agreement.allowed_fields``): the broker cannot look inside to check, and
    sees only the declared names, which the context binds.
    """
    names, body = _payload_body(fields)
    context = sealing_context(
        event_id=event_id, agreement_id=agreement_id, recipient=recipient, fields=names
    )
    enc, ciphertext = seal(recipient_public_key, body, aad=context)
    return SealedPayload(recipient, agreement_id, enc, ciphertext, names)


def _payload_body(fields: Mapping[str, str]) -> tuple[tuple[str, ...], bytes]:
    """The sorted field names and the canonical JSON body every sealer writes."""
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items()):
        raise SealingFailed("sealed fields must map names to text values")
    body = json.dumps(dict(fields), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return tuple(sorted(fields)), body.encode("utf-8")


def open_fields(
    private_key: X25519PrivateKey, payload: SealedPayload, *, event_id: str
) -> dict[str, str]:
    """Open what ``seal_payload`` sealed, as labelled: this event, agreement, recipient, fields.

    Raises:
        SealingFailed: reason ``sealing-failed`` if it does not open under its
            labels (another event, a relabelled agreement or recipient, changed
            field names, wrong key or altered bytes: indistinguishable), or is
            not a map of text fields; reason ``fields-mismatch`` if it opens but
            holds other fields than it declares (a sealer that lied).
    """
    context = sealing_context(
        event_id=event_id,
        agreement_id=payload.agreement_id,
        recipient=payload.recipient,
        fields=payload.fields,
    )
    plaintext = open_sealed(private_key, payload.enc, payload.ciphertext, aad=context)
    try:
        fields = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # nested thousands deep
        raise SealingFailed("sealed payload is not a field map") from exc
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        raise SealingFailed("sealed payload is not a field map")
    if sorted(fields) != sorted(payload.fields) or len(set(payload.fields)) != len(payload.fields):
        raise SealingFailed(
            f"payload for {payload.recipient} under {payload.agreement_id} holds other "
            "fields than it declares",
            reason="fields-mismatch",
        )
    return fields
