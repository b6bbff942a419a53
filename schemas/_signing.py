"""What a fedbroker signature covers: a domain tag, a writer fingerprint, exact bytes.

Every signature in the federation is over ``signing_input(domain, fingerprint,
body)`` (DESIGN section 10). The domain tag keeps a signature from being
replayed as another kind (a notification presented as an event); the writer
schema's fingerprint pins how the body is to be read; and the body is the exact
bytes that travel, so a verifier checks what arrived and never re-encodes a
record to reproduce what the signer saw. The cryptography is in ``consent``;
this module only fixes the bytes, so that ``schemas`` stays free of keys.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from schemas._errors import EncodeError
from schemas._records import CitizenEvent, ConsentRecord, MatchNotification

__all__ = ["DOMAIN_RECORDS", "NOT_AVRO", "SignatureDomain", "signing_input"]


class SignatureDomain(StrEnum):
    """The kinds of signed thing; the ``/v3`` is the wire release that introduced them."""

    EVENT = "fedbroker/event/v3"
    CONSENT = "fedbroker/consent/v3"
    NOTIFICATION = "fedbroker/notification/v3"
    CHECKPOINT = "fedbroker/checkpoint/v3"
    DIRECTORY = "fedbroker/directory/v3"


DOMAIN_RECORDS: Mapping[SignatureDomain, type[object]] = MappingProxyType(
    {
        SignatureDomain.EVENT: CitizenEvent,
        SignatureDomain.CONSENT: ConsentRecord,
        SignatureDomain.NOTIFICATION: MatchNotification,
    }
)
"""The record an envelope of each domain must hold; the other domains sign JSON."""

NOT_AVRO = 0
"""The fingerprint of a body that is not Avro (audit checkpoints, the directory):
its format is fixed by its domain alone."""

_FINGERPRINT = struct.Struct("<Q")


def signing_input(domain: SignatureDomain, fingerprint: int, body: bytes) -> bytes:
    """The bytes an Ed25519 signature covers: ``domain NUL fingerprint(8, LE) body``.

    The domain cannot hold a NUL and the fingerprint has a fixed width, so no two
    different (domain, fingerprint, body) triples give the same input.

    Raises:
        EncodeError: the fingerprint does not fit 64 bits unsigned.
    """
    if not 0 <= fingerprint < 2**64:
        raise EncodeError("a writer fingerprint is 64 bits unsigned", reason="bad-fingerprint")
    return (
        SignatureDomain(domain).value.encode("ascii")
        + b"\x00"
        + _FINGERPRINT.pack(fingerprint)
        + body
    )
