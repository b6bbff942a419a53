"""Sealing fields to one recipient: HPKE (RFC 9180) in base mode.

The suite is DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, as provided
by ``cryptography.hazmat.primitives.hpke`` (cryptography 47+). Only the holder of
the recipient's X25519 private key can open a payload; the broker, which routes
it, cannot (DESIGN section 2).

The event id (``aad``) is bound through HPKE's ``info`` parameter, which enters
the key schedule: a payload moved to another event does not open. (cryptography's
public single-shot API exposes ``info`` but not the AEAD's associated data; for
binding a context string the two are equivalent.) ``enc`` is the 32-byte
encapsulated ephemeral public key, kept apart because ``SealedPayload`` has a
field for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from consent._errors import KeyInvalid, SealingFailed

__all__ = ["SEALING_SUITE", "open_fields", "open_sealed", "seal", "seal_fields"]

SEALING_SUITE = "HPKE-base DHKEM(X25519,HKDF-SHA256) HKDF-SHA256 AES-256-GCM"
"""What ``seal`` uses, as a label for documentation and the directory."""

_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)
_ENC_LENGTH = 32
_INFO_PREFIX = b"fedbroker/seal/v1\x00"


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


def seal_fields(
    recipient_public_key: X25519PublicKey, fields: Mapping[str, str], *, event_id: str
) -> tuple[bytes, bytes]:
    """Seal a small map of payload fields as canonical JSON (sorted keys, UTF-8).

    One encoding for every sealer and opener, so connectors and subscribers agree.
    Seal only what the agreement allows (``Agreement.allowed_fields``): the broker
    cannot look inside to check.
    """
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items()):
        raise SealingFailed("sealed fields must map names to text values")
    body = json.dumps(dict(fields), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return seal(recipient_public_key, body.encode("utf-8"), aad=event_id)


def open_fields(
    private_key: X25519PrivateKey, enc: bytes, ciphertext: bytes, *, event_id: str
) -> dict[str, str]:
    """Open what ``seal_fields`` sealed.

    Raises:
        SealingFailed: it does not open, or is not a map of text fields.
    """
    plaintext = open_sealed(private_key, enc, ciphertext, aad=event_id)
    try:
        fields = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SealingFailed("sealed payload is not a field map") from exc
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        raise SealingFailed("sealed payload is not a field map")
    return fields
