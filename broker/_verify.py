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
from consent import (
    DEFAULT_OCCURRED_FLOOR,
    DEFAULT_RECORDED_FLOOR,
    Directory,
    MemberKind,
    SignatureInvalid,
    open_envelope,
    time_problem,
)
from schemas import CitizenEvent, Codec, ConsentRecord, ConsentState, SignatureDomain

__all__ = [
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_SKEW",
    "DEFAULT_OCCURRED_FLOOR",
    "DEFAULT_RECORDED_FLOOR",
    "Rejected",
    "key_epoch_problem",
    "source_time_problem",
    "topic_council",
    "verify_record",
]

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
    occurred_floor: datetime = DEFAULT_OCCURRED_FLOOR,
    recorded_floor: datetime = DEFAULT_RECORDED_FLOOR,
) -> CitizenEvent | ConsentRecord:
    """The record in a council's message, or ``Rejected`` with a reason code.

    Reasons: ``unknown-council`` (topic owner not a council in the directory),
    ``wrong-topic`` (neither an events nor a consent topic), ``wrong-domain``
    (signed as another kind of record), ``wrong-council`` (signed by, or naming,
    another council), ``bad-signature``, ``stale-key-epoch``, ``stale``
    (published longer than ``max_age`` ago), ``from-the-future`` (published
    more than ``max_skew`` ahead of ``now``), and the source's own times
    (``time_problem``): ``occurred-in-future``, ``occurred-before-floor``,
    ``recorded-in-future``, ``recorded-before-floor``. Undecodable bytes raise
    the codec's ``DecodeError`` leaves, each with its own reason.
    """
    owner = topic_council(topic)
    member = directory.members.get(owner)
    # The broker, services and the authority sign too, but never as a council.
    if member is None or member.kind is not MemberKind.COUNCIL or member.signing_key is None:
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
    problem = key_epoch_problem(record, accepted_epochs)
    if problem is not None:
        raise Rejected(f"{topic}: a linkage-key epoch is refused", reason=problem)
    if record.published_at < now - max_age and not _kept_however_old(record):
        raise Rejected(f"{topic}: published too long ago", reason="stale")
    if record.published_at > now + max_skew:
        raise Rejected(f"{topic}: published in the future", reason="from-the-future")
    problem = source_time_problem(
        record, skew=max_skew, occurred_floor=occurred_floor, recorded_floor=recorded_floor
    )
    if problem is not None:
        raise Rejected(f"{topic}: a source time is out of bounds", reason=problem)
    return record


#: Consent states a broker applies however long ago they were published.
_NEVER_STALE = frozenset({ConsentState.WITHDRAWN, ConsentState.OBJECTED})


def _kept_however_old(record: CitizenEvent | ConsentRecord) -> bool:
    """Whether ``record`` is admitted past ``max_age``: a withdrawal or an objection.

    A refusal only restricts: refused as stale, it is lost to a worker group
    lagging more than ``max_age`` behind a consent topic, or rebuilding state
    from it, and a grant read while fresh goes on disclosing. Its age gives
    nothing to an attacker: it ranks by its own time (``consent.effective_time``),
    so an old one replayed cannot undo a newer grant, and applying the same
    record again changes nothing (``TokenConsent.apply``), which is how a replay
    is recognised; it writes no audit record. A grant (it only widens) and an
    erasure request are still refused: an erasure is audited under an id a
    worker remembers for the freshness window only (``OnceChain``), so one read
    again later would be audited twice and fail ``audit verify``.
    """
    return isinstance(record, ConsentRecord) and record.state in _NEVER_STALE


def key_epoch_problem(
    record: CitizenEvent | ConsentRecord, accepted_epochs: frozenset[int] | None
) -> str | None:
    """The reason code of a linkage-key epoch the broker must refuse, or None.

    Tokens are matched by value, so a record that says epoch 1 but carries
    tokens of a retired epoch 0 would link under a key the federation has
    withdrawn (issue 11): every token's epoch counts, not only the record's.
    During a rotation an honest connector writes each token under every key it
    holds, its ``key_epoch`` being the newest; so a record is refused as
    mixed, even when each epoch is accepted, only if a token is newer than its
    own epoch or none is of it.
    """
    epochs = {t.epoch for t in (*record.tokens, *record.blocking_tokens)}
    if accepted_epochs is not None and not {record.key_epoch, *epochs} <= accepted_epochs:
        return "stale-key-epoch"
    if epochs and (max(epochs) > record.key_epoch or record.key_epoch not in epochs):
        return "mixed-key-epochs"
    return None


def source_time_problem(
    record: CitizenEvent | ConsentRecord,
    *,
    skew: timedelta = DEFAULT_MAX_SKEW,
    occurred_floor: datetime = DEFAULT_OCCURRED_FLOOR,
    recorded_floor: datetime = DEFAULT_RECORDED_FLOOR,
) -> str | None:
    """The reason code of a source time out of bounds (``consent.time_problem``), or None.

    A clerk's 2062 for 2026 would otherwise outrank every later withdrawal, and an
    ``occurred_at`` of 9999-12-31 overflows the first window added to it.
    ``published_at`` itself is bounded by the broker's clock (``from-the-future``).
    """
    if isinstance(record, CitizenEvent):
        return time_problem(published_at=record.published_at, occurred_at=record.occurred_at,
                            skew=skew, occurred_floor=occurred_floor)  # fmt: skip
    return time_problem(published_at=record.published_at, recorded_at=record.recorded_at,
                        skew=skew, recorded_floor=recorded_floor)  # fmt: skip
