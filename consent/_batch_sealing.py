"""Sealing a batch of payloads: HPKE base mode, one ephemeral key per recipient per batch.

Each ``seal_payload`` call runs a full HPKE encapsulation: a fresh X25519 key
pair and a Diffie-Hellman exchange, about 0.15 ms, which made sealing a quarter
of the connector's time (issue 12). A connector seals thousands of payloads
per file to a handful of recipients, so ``BatchSealer`` encapsulates once per
recipient key per batch and derives every payload's AES-256-GCM key and nonce
from that shared secret through the RFC 9180 key schedule, with the payload's
own sealing context as HPKE ``info``. The output is byte-for-byte what RFC 9180
single-shot ``Seal`` gives for that ephemeral key, so recipients open it with
the ordinary ``open_fields`` (``cryptography``'s ``Suite.decrypt``): nothing
changes on the wire or for a subscriber.

Why it is safe: HPKE derives the key and the nonce from the shared secret
*and* ``info``, so payloads with different contexts get independent keys and
nonces. A context is unique per event, agreement, recipient and field names;
should one repeat within a batch (a file holding the same event twice), the
sealer encapsulates afresh rather than ever reuse a key with a nonce. The
ephemeral private key lives in memory for one batch (``DEFAULT_SEALER_MAX_USES``
payloads at most), so forward secrecy is per batch rather than per payload.
What an observer learns: payloads sealed to one recipient in one batch carry
the same ``enc``, i.e. that they were sealed together, which their arrival
together on one council's topic shows anyway.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from consent._errors import KeyInvalid
from consent._keyed_hmac import HmacSha256
from consent._sealing import _info, _payload_body, sealing_context
from schemas import SealedPayload

__all__ = ["DEFAULT_SEALER_MAX_USES", "BatchSealer"]

#: Payloads sealed under one ephemeral key before a fresh one is made.
DEFAULT_SEALER_MAX_USES = 10_000

# RFC 9180 identifiers of the suite ``consent._sealing`` uses:
# DHKEM(X25519, HKDF-SHA256) 0x0020, HKDF-SHA256 0x0001, AES-256-GCM 0x0002.
_KEM_SUITE = b"KEM\x00\x20"
_HPKE_SUITE = b"HPKE\x00\x20\x00\x01\x00\x02"
_VERSION = b"HPKE-v1"
_MODE_BASE = b"\x00"
_NK, _NN, _NSECRET = 32, 12, 32


def _extract(salt: bytes, ikm: bytes) -> bytes:
    # An empty HMAC key is padded with zeros, as HKDF's default all-zero salt is.
    return hmac.digest(salt, ikm, "sha256")


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    # One HMAC block suffices for every length used here (at most 32 bytes).
    return hmac.digest(prk, info + b"\x01", "sha256")[:length]


def _labeled_extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, _VERSION + suite + label + ikm)


def _labeled_expand(suite: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return _expand(prk, length.to_bytes(2, "big") + _VERSION + suite + label + info, length)


_PSK_ID_HASH = _labeled_extract(_HPKE_SUITE, b"", b"psk_id_hash", b"")
# Every payload's key schedule runs three HMACs under two keys: the empty salt
# of ``info_hash`` and the sender's ``secret``. Their pads are hashed once
# (``HmacSha256``); the prefixes of the labelled inputs are fixed too.
_EMPTY_SALT = HmacSha256(b"")
_INFO_HASH_PREFIX = _VERSION + _HPKE_SUITE + b"info_hash"
_KEY_PREFIX = _NK.to_bytes(2, "big") + _VERSION + _HPKE_SUITE + b"key"
_NONCE_PREFIX = _NN.to_bytes(2, "big") + _VERSION + _HPKE_SUITE + b"base_nonce"


def _raw(key: X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(slots=True)
class _Sender:
    """One encapsulation: ``enc`` and the key schedule's ``secret`` (RFC 9180 5.1)."""

    enc: bytes
    secret: bytes
    contexts: set[bytes] = field(default_factory=set)
    keyed: HmacSha256 = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.keyed = HmacSha256(self.secret)

    @classmethod
    def to(cls, recipient: X25519PublicKey) -> _Sender:
        ephemeral = X25519PrivateKey.generate()
        enc = _raw(ephemeral.public_key())
        dh = ephemeral.exchange(recipient)
        eae_prk = _labeled_extract(_KEM_SUITE, b"", b"eae_prk", dh)
        shared = _labeled_expand(
            _KEM_SUITE, eae_prk, b"shared_secret", enc + _raw(recipient), _NSECRET
        )
        return cls(enc, _labeled_extract(_HPKE_SUITE, shared, b"secret", b""))

    def seal(self, info: bytes, plaintext: bytes) -> bytes:
        """RFC 9180 single-shot ``Seal`` (sequence 0) of ``plaintext`` under ``info``."""
        self.contexts.add(info)
        # _labeled_extract and _labeled_expand, spelled out over the precomputed keys.
        schedule = _MODE_BASE + _PSK_ID_HASH + _EMPTY_SALT.digest(_INFO_HASH_PREFIX + info)
        key = self.keyed.digest(_KEY_PREFIX + schedule + b"\x01")[:_NK]
        nonce = self.keyed.digest(_NONCE_PREFIX + schedule + b"\x01")[:_NN]
        return AESGCM(key).encrypt(nonce, plaintext, None)


class BatchSealer:
    """``seal_payload`` for many payloads, one encapsulation per recipient key.

    Make one per batch and drop it after: it holds ephemeral private secrets.

    Args:
        max_uses: payloads per ephemeral key before a fresh one (default
            ``DEFAULT_SEALER_MAX_USES``).
    """

    def __init__(self, *, max_uses: int = DEFAULT_SEALER_MAX_USES) -> None:
        self._senders: dict[bytes, _Sender] = {}
        self._max_uses = max_uses
        # An event seals the same fields to every recipient of an agreement, under
        # the same few directory keys: both are remembered, by value and by object.
        self._last_fields: dict[str, str] | None = None
        self._last_body: tuple[tuple[str, ...], bytes] = ((), b"")
        self._raw_keys: dict[int, tuple[X25519PublicKey, bytes]] = {}

    def _body(self, fields: Mapping[str, str]) -> tuple[tuple[str, ...], bytes]:
        """``_payload_body(fields)``, computed once for equal consecutive field maps."""
        if type(fields) is dict and fields == self._last_fields:
            return self._last_body
        self._last_body = _payload_body(fields)
        self._last_fields = dict(fields)
        return self._last_body

    def _raw(self, key: X25519PublicKey) -> bytes:
        known = self._raw_keys.get(id(key))
        if known is None or known[0] is not key:  # holding the key keeps its id unique
            known = self._raw_keys[id(key)] = (key, _raw(key))
        return known[1]

    def seal_payload(
        self,
        recipient_public_key: X25519PublicKey,
        fields: Mapping[str, str],
        *,
        event_id: str,
        agreement_id: str,
        recipient: str,
    ) -> SealedPayload:
        """What ``consent.seal_payload`` returns, opened by ``open_fields`` alike.

        Raises:
            KeyInvalid: the recipient key is not an X25519 public key.
            SealingFailed: the fields are not a map of text values.
        """
        if not isinstance(recipient_public_key, X25519PublicKey):
            raise KeyInvalid("sealing needs the recipient's X25519 public key")
        names, body = self._body(fields)
        info = _info(
            sealing_context(
                event_id=event_id, agreement_id=agreement_id, recipient=recipient, fields=names
            )
        )
        raw = self._raw(recipient_public_key)
        sender = self._senders.get(raw)
        if sender is None or info in sender.contexts or len(sender.contexts) >= self._max_uses:
            # A repeated context would repeat a key and nonce: never under one encapsulation.
            sender = self._senders[raw] = _Sender.to(recipient_public_key)
        ciphertext = sender.seal(info, body)
        return SealedPayload(recipient, agreement_id, sender.enc, ciphertext, names)
