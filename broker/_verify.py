"""Checking what arrives on a council's topic before anything is believed.

Pure: given the message bytes, the topic they came from and the directory, either
return the record or say why not. The topic decides who must have signed (an
event on ``fed.events.X`` is accepted only in an envelope council X signed in
the event domain), so a council cannot speak for another even if it can write to
the other's topic. The signature is checked over the bytes as they arrived,
before the record is decoded (``consent.open_envelope``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker._errors import BrokerError
from consent import Directory, SignatureInvalid, open_envelope
from schemas import CitizenEvent, Codec, ConsentRecord, SignatureDomain

__all__ = ["DEFAULT_MAX_AGE", "DEFAULT_MAX_SKEW", "Rejected", "topic_council", "verify_record"]

DEFAULT_MAX_AGE = timedelta(days=30)
DEFAULT_MAX_SKEW = timedelta(minutes=5)


class Rejected(BrokerError):
    """A message the broker refuses; ``reason`` goes to ``fed.rejected`` and metrics."""

    reason = "rejected"


def topic_council(topic: str) -> str:
    """The council that owns ``<prefix>.events.<gss>`` or ``<prefix>.consent.<gss>``."""
    return topic.rsplit(".", 1)[-1]


_DOMAINS = {"events": SignatureDomain.EVENT, "consent": SignatureDomain.CONSENT}


def verify_record(
    data: bytes,
    *,
    topic: str,
    directory: Directory,
    codec: Codec,
    now: datetime,
    accepted_epochs: frozenset[int] | None = None,
    max_age: timedelta = DEFAULT_MAX_AGE,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
) -> CitizenEvent | ConsentRecord:
    """The record in a council's message, or ``Rejected`` with a reason code.

    Reasons: ``unknown-council`` (topic owner not in the directory),
    ``wrong-topic`` (neither an events nor a consent topic), ``wrong-domain``
    (signed as another kind of record), ``wrong-council`` (signed by, or naming,
    another council), ``bad-signature``, ``stale-key-epoch``, ``stale``
    (published longer than ``max_age`` ago) and ``from-the-future`` (published
    more than ``max_skew`` ahead of ``now``). Undecodable bytes raise the
    codec's ``DecodeError`` leaves, each with its own reason.
    """
    owner = topic_council(topic)
    member = directory.members.get(owner)
    if member is None or member.signing_key is None:
        raise Rejected(
            f"{topic}: owner is not a council in the directory", reason="unknown-council"
        )
    domain = _DOMAINS.get(topic.rsplit(".", 2)[-2] if topic.count(".") >= 2 else "")
    if domain is None:
        raise Rejected(f"{topic}: not a council's events or consent topic", reason="wrong-topic")
    owner_key = member.signing_key

    def key_for(signer: str) -> Ed25519PublicKey:
        if signer != owner:
            raise Rejected(f"{topic}: signed by another member", reason="wrong-council")
        return owner_key

    try:
        record, _ = open_envelope(data, domain, key_for, codec=codec)
    except SignatureInvalid as exc:
        reason = "bad-signature" if exc.reason == SignatureInvalid.reason else exc.reason
        raise Rejected(f"{topic}: signature does not verify", reason=reason) from exc
    assert isinstance(record, CitizenEvent | ConsentRecord)
    claimed = record.source_council if isinstance(record, CitizenEvent) else record.council
    if claimed != owner:
        raise Rejected(f"{topic}: record names another council", reason="wrong-council")
    if accepted_epochs is not None and record.key_epoch not in accepted_epochs:
        raise Rejected(f"{topic}: linkage-key epoch not accepted", reason="stale-key-epoch")
    if record.published_at < now - max_age:
        raise Rejected(f"{topic}: published too long ago", reason="stale")
    if record.published_at > now + max_skew:
        raise Rejected(f"{topic}: published in the future", reason="from-the-future")
    return record
