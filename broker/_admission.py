"""Admitting one message from a council's topic: the cheapest refusals first.

Anyone who can write to a council's topic can send anything, and the costly
steps (Avro decoding, Ed25519) scale with what was sent. So the raw size is
checked before anything is read: an unsigned 770 KB message is refused by one
``len``, not after half a second of decoding and hashing. Then
``verify_record`` checks who signed the exact bytes (before decoding the
body), the key epoch and the times; then the numbers and sizes of tokens,
attributes and sealed payloads are capped before the broker does any work
per token. Pure: the app passes the bytes, the topic, the directory
and the clock, and gets the record or a ``Rejected`` with a reason code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from broker._verify import (
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_SKEW,
    DEFAULT_OCCURRED_FLOOR,
    DEFAULT_RECORDED_FLOOR,
    Rejected,
    verify_record,
)
from consent import Directory, consent_grantors
from schemas import (
    EVENT_CATALOGUE,
    CitizenEvent,
    Codec,
    ConsentRecord,
    ConsentState,
    SchemaError,
    canonical_attribute,
    event_id_bound,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "AdmissionPolicy",
    "Limits",
    "admit",
    "admit_each",
    "check_opaque",
    "check_scope",
    "check_shape",
    "check_size",
]

#: A real event is a few kilobytes (tokens, a 128-byte encoding, a few sealed fields).
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
DEFAULT_MAX_TOKENS = 64
DEFAULT_MAX_ATTRIBUTES = 32
DEFAULT_MAX_ATTRIBUTE_BYTES = 256
DEFAULT_MAX_SEALED = 16
DEFAULT_MAX_SEALED_BYTES = 8 * 1024
DEFAULT_MAX_FUZZY_BYTES = 1024
#: Ids, systems, encodings, domains: a 32-hex id is 32 bytes; 128 leaves room, not a novel.
DEFAULT_MAX_IDENTIFIER_BYTES = 128
DEFAULT_MAX_REFERENCE_BYTES = 128
DEFAULT_MAX_SCOPE_BYTES = 128
#: Tokens are 32-byte HMACs; twice that leaves room for a longer hash.
DEFAULT_MAX_TOKEN_BYTES = 64
DEFAULT_MAX_SEALED_FIELDS = 32
DEFAULT_MAX_FIELD_NAME_BYTES = 64


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps on what one message may carry; each breach has its own reason code.

    Args:
        message_bytes: raw message size (``too-large``), default 64 KiB.
        tokens: exact plus blocking tokens (``too-many-tokens``), default 64.
        attributes: attribute entries (``too-many-attributes``), default 32.
        attribute_bytes: one key or value, UTF-8 (``attribute-too-large``), default 256.
        sealed: sealed payloads (``too-many-sealed``), default 16.
        sealed_bytes: one payload's ciphertext (``sealed-too-large``), default 8 KiB.
        fuzzy_bytes: the fuzzy encoding (``fuzzy-too-large``), default 1 KiB.
        identifier_bytes: an event or record id, source system, encoding, token
            domain, sealed recipient or agreement id (``identifier-too-long``),
            default 128.
        reference_bytes: the source reference (``reference-too-long``), default 128.
        scope_bytes: a consent scope (``scope-too-long``), default 128.
        token_bytes: one token's value (``token-too-large``), default 64.
        sealed_fields: field names one sealed payload declares
            (``too-many-sealed-fields``), default 32.
        field_name_bytes: one declared field name (``field-name-too-long``), default 64.
    """

    message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    tokens: int = DEFAULT_MAX_TOKENS
    attributes: int = DEFAULT_MAX_ATTRIBUTES
    attribute_bytes: int = DEFAULT_MAX_ATTRIBUTE_BYTES
    sealed: int = DEFAULT_MAX_SEALED
    sealed_bytes: int = DEFAULT_MAX_SEALED_BYTES
    fuzzy_bytes: int = DEFAULT_MAX_FUZZY_BYTES
    identifier_bytes: int = DEFAULT_MAX_IDENTIFIER_BYTES
    reference_bytes: int = DEFAULT_MAX_REFERENCE_BYTES
    scope_bytes: int = DEFAULT_MAX_SCOPE_BYTES
    token_bytes: int = DEFAULT_MAX_TOKEN_BYTES
    sealed_fields: int = DEFAULT_MAX_SEALED_FIELDS
    field_name_bytes: int = DEFAULT_MAX_FIELD_NAME_BYTES


@dataclass(frozen=True, slots=True)
class AdmissionPolicy:
    """What the broker accepts: limits, freshness, time floors and key epochs.

    ``accepted_epochs`` None accepts any linkage-key epoch (``--key-epoch``).
    """

    limits: Limits = field(default_factory=Limits)
    max_age: timedelta = DEFAULT_MAX_AGE
    max_skew: timedelta = DEFAULT_MAX_SKEW
    occurred_floor: datetime = DEFAULT_OCCURRED_FLOOR
    recorded_floor: datetime = DEFAULT_RECORDED_FLOOR
    accepted_epochs: frozenset[int] | None = None


def check_size(raw: bytes, limits: Limits) -> None:
    """Refuse a message larger than ``limits.message_bytes`` before reading any of it."""
    if len(raw) > limits.message_bytes:
        raise Rejected(f"message of {len(raw)} bytes exceeds the limit", reason="too-large")


def _longest(texts: Iterable[str]) -> int:
    return max((len(t.encode()) for t in texts), default=0)


def check_shape(record: CitizenEvent | ConsentRecord, limits: Limits) -> None:
    """Refuse a decoded record carrying more than the limits allow, before anything keeps it.

    Every string and list the sender chooses is bounded: what is not would be
    copied into state, audit records and notifications at the sender's will.
    """
    tokens = (*record.tokens, *record.blocking_tokens)
    # A record is routed by its tokens (consent applies by exact token): with none
    # it would be counted, never decided, never rejected, silently lost.
    if not (record.tokens if isinstance(record, ConsentRecord) else tokens):
        raise Rejected("no token to route or apply the record by", reason="no-tokens")
    ids = (
        (record.record_id,)
        if isinstance(record, ConsentRecord)
        else (record.event_id, record.source_system, record.source_ref)
    )
    if not all(ids):
        # two events with an empty id would be taken for one (a duplicate)
        raise Rejected("an identifier is empty", reason="identifier-empty")
    if len(tokens) > limits.tokens:
        raise Rejected("too many tokens", reason="too-many-tokens")
    if any(len(t.value) > limits.token_bytes for t in tokens):
        raise Rejected("a token is too large", reason="token-too-large")
    if isinstance(record, ConsentRecord):
        if _longest((record.record_id, *(t.domain for t in tokens))) > limits.identifier_bytes:
            raise Rejected("an identifier is too long", reason="identifier-too-long")
        if len(record.scope.encode()) > limits.scope_bytes:
            raise Rejected("the scope is too long", reason="scope-too-long")
        return
    names = (record.event_id, record.source_system, record.encoding, *(t.domain for t in tokens))
    sealed_ids = (x for p in record.sealed for x in (p.recipient, p.agreement_id))
    if _longest((*names, *sealed_ids)) > limits.identifier_bytes:
        raise Rejected("an identifier is too long", reason="identifier-too-long")
    if len(record.source_ref.encode()) > limits.reference_bytes:
        raise Rejected("the source reference is too long", reason="reference-too-long")
    if len(record.attributes) > limits.attributes:
        raise Rejected("too many attributes", reason="too-many-attributes")
    for key, value in record.attributes.items():
        if max(len(key.encode()), len(value.encode())) > limits.attribute_bytes:
            raise Rejected("an attribute is too large", reason="attribute-too-large")
    if len(record.sealed) > limits.sealed:
        raise Rejected("too many sealed payloads", reason="too-many-sealed")
    if any(len(p.ciphertext) + len(p.enc) > limits.sealed_bytes for p in record.sealed):
        raise Rejected("a sealed payload is too large", reason="sealed-too-large")
    if any(len(p.fields) > limits.sealed_fields for p in record.sealed):
        raise Rejected("a sealed payload declares too many fields", reason="too-many-sealed-fields")
    if _longest(f for p in record.sealed for f in p.fields) > limits.field_name_bytes:
        raise Rejected("a declared field name is too long", reason="field-name-too-long")
    if record.fuzzy is not None and len(record.fuzzy) > limits.fuzzy_bytes:
        raise Rejected("the fuzzy encoding is too large", reason="fuzzy-too-large")


#: A connector's references and consent ids are keyed digests (``opaque_reference``,
#: ``event_id_for``): 32 lowercase hex characters, nothing else.
_OPAQUE = re.compile(r"[0-9a-f]{32}")
#: Token domains are short lowercase tags (``nhs``, ``name+dob``, ``sx-name+postcode``).
_DOMAIN = re.compile(r"[a-z0-9]+(?:[+-][a-z0-9]+)*")
_MAX_DOMAIN = 32


def check_opaque(record: CitizenEvent | ConsentRecord) -> None:
    """Refuse text where the contract has a digest or a tag: what the broker keeps in clear.

    A reference travels in every notification, a consent id into the audit
    trail's erasure ids, a token domain into every token key (audit subject
    tokens, Kafka keys), an attribute into state: a careless mapping or a forged
    connector must not get a name or a number there. Reasons:
    ``reference-not-opaque``, ``identifier-not-opaque`` (a consent record id),
    ``token-domain-invalid``, ``unknown-attribute`` (not one its event type carries),
    ``attribute-value-not-allowed`` (not a code of ``schemas.ATTRIBUTE_VALUES``).
    """
    tokens = (*record.tokens, *record.blocking_tokens)
    if any(len(t.domain) > _MAX_DOMAIN or not _DOMAIN.fullmatch(t.domain) for t in tokens):
        raise Rejected("a token domain is not a domain tag", reason="token-domain-invalid")
    if isinstance(record, ConsentRecord):
        if not _OPAQUE.fullmatch(record.record_id):
            raise Rejected("the record id is not opaque", reason="identifier-not-opaque")
        return
    if not _OPAQUE.fullmatch(record.source_ref):
        raise Rejected("the source reference is not opaque", reason="reference-not-opaque")
    if not EVENT_CATALOGUE[record.event_type].attributes.issuperset(record.attributes):
        raise Rejected("an attribute its event type does not carry", reason="unknown-attribute")
    if any(canonical_attribute(k, v) != v for k, v in record.attributes.items()):
        raise Rejected(
            "an attribute value is not a code of its vocabulary",
            reason="attribute-value-not-allowed",
        )


def check_scope(
    record: CitizenEvent | ConsentRecord,
    directory: Directory,
    scopes: Mapping[str, frozenset[str]] | None = None,
) -> None:
    """Refuse a consent scope the directory does not name, and a grant its council may not record.

    ``scopes`` maps each scope of the newest signed directory to the councils
    that may record a grant under it (``consent.consent_grantors``; default
    ``directory``'s): a worker serves an agreement added since it started only
    after a restart, but a resident's objection to it must be kept meanwhile,
    not refused and lost. Reasons: ``unknown-scope`` (free text, a resident's
    name), ``grant-not-controller`` (a grant from a council that does not
    supply every agreement the scope covers; it would count for them, and
    override an objection recorded by one that does). A withdrawal, objection
    or erasure request is never refused on that ground: it only restricts.
    """
    if not isinstance(record, ConsentRecord):
        return
    known = scopes if scopes is not None else consent_grantors(directory)
    grantors = known.get(record.scope)
    if grantors is None:
        raise Rejected("the consent scope is not in the directory", reason="unknown-scope")
    if record.state is ConsentState.GRANTED and record.council not in grantors:
        raise Rejected(
            "a grant from a council that does not supply every agreement its scope covers",
            reason="grant-not-controller",
        )


def admit(
    raw: bytes,
    *,
    topic: str,
    directory: Directory,
    codec: Codec,
    now: datetime,
    policy: AdmissionPolicy,
    scopes: Mapping[str, frozenset[str]] | None = None,
) -> CitizenEvent | ConsentRecord:
    """The verified record in ``raw`` from ``topic``, or ``Rejected`` with a reason code.

    ``scopes`` are the consent scopes to accept, each with the councils that
    may record a grant under it (``check_scope``; default those of ``directory``).

    Order: size, then ``verify_record`` (the signed envelope's domain for the
    topic, council, signature over the exact bytes, then decoding with the
    codec's own reason codes, epoch, freshness, source times), then shape,
    opaque fields (``check_opaque``), scope, and that an event's id is the one its own fields give
    (``schemas.event_id_bound``).
    Since the signature covers the bytes as sent (no re-encoding), checking it
    before the shape costs one Ed25519 verification, not a decode and encode.
    """
    check_size(raw, policy.limits)
    try:
        record = verify_record(
            raw,
            topic=topic,
            directory=directory,
            codec=codec,
            now=now,
            accepted_epochs=policy.accepted_epochs,
            max_age=policy.max_age,
            max_skew=policy.max_skew,
            occurred_floor=policy.occurred_floor,
            recorded_floor=policy.recorded_floor,
        )
    except SchemaError as exc:
        raise Rejected(f"{topic}: not a readable message", reason=exc.reason) from exc
    check_shape(record, policy.limits)
    check_opaque(record)
    check_scope(record, directory, scopes)
    # Ids are deduplicated on; one that is not the event's own (its council's
    # digest) would let one council have another's real event dropped as a replay.
    if isinstance(record, CitizenEvent) and not event_id_bound(record):
        raise Rejected(f"{topic}: event id is not its own", reason="event-id-unbound")
    return record


def admit_each(
    messages: Sequence[tuple[bytes, str]],
    *,
    directory: Directory,
    codec: Codec,
    now: datetime,
    policy: AdmissionPolicy,
    scopes: Mapping[str, frozenset[str]] | None = None,
) -> list[CitizenEvent | ConsentRecord | Exception]:
    """``admit`` for each ``(raw, topic)``: its record, or the error it raised.

    The verify agent runs this in threads off the event loop: ``admit`` is a
    pure function of its arguments, and its Ed25519 check releases the GIL,
    so a batch's signatures are checked while the loop matches and sends.
    One message's error is returned in its place, never raised: it is
    refused alone (``guarded``), and the others go on.
    """
    outcomes: list[CitizenEvent | ConsentRecord | Exception] = []
    for raw, topic in messages:
        try:
            outcomes.append(admit(raw, topic=topic, directory=directory, codec=codec, now=now,
                                  policy=policy, scopes=scopes))  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - returned in the message's place
            outcomes.append(exc)
    return outcomes
