"""From one mapped source row to a sealed, pseudonymous event or consent record, then signed.

Pure apart from the randomness in sealing: given the row, the mapping, the keys
and the directory it returns a record ready to encode. Clear values exist only
inside this function's frame; what leaves it holds tokens, the Bloom encoding,
catalogue attributes and sealed payloads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from connectors._bloom import ENCODING
from connectors._errors import InvalidIdentifier
from connectors._mapping import SourceMapping
from connectors._normalise import DroppedField
from connectors._rows import EncodedRow, encode_row
from connectors._sources import SourceRow
from connectors._timestamps import TimeBounds, parse_timestamp
from connectors._tokens import LinkageKey, Tokeniser, Tokens, opaque_reference
from consent import (
    Agreement,
    BatchSealer,
    Directory,
    agreements_for,
    consent_scopes,
    seal_envelope,
    seal_payload,
)
from schemas import (
    EVENT_CATALOGUE,
    CitizenEvent,
    Codec,
    ConsentRecord,
    ConsentState,
    EventType,
    SealedPayload,
    SignatureDomain,
    canonical_attribute,
    citizen_event_id,
    event_id_for,
)

__all__ = ["EventFactory", "event_id_for"]


@dataclass(frozen=True, slots=True)
class EventFactory:
    """Everything a council needs to turn its rows into records it may publish."""

    council: str
    signing_key: Ed25519PrivateKey
    directory: Directory
    tokeniser: Tokeniser
    reference_key: LinkageKey
    time_bounds: TimeBounds = TimeBounds()
    # Who gets which fields of each event type: fixed by the directory, which a
    # factory never changes (a new directory is a new factory), so worked out once.
    _seal_plans: dict[EventType, tuple[tuple[Agreement, frozenset[str]], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _recipients: dict[tuple[EventType, int], tuple[tuple[str, X25519PublicKey], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def _identity_and_tokens(
        self,
        row: SourceRow,
        mapping: SourceMapping,
        dropped: list[DroppedField] | None,
        encoded: EncodedRow | InvalidIdentifier | None,
    ) -> Tokens:
        if encoded is None:
            encoded = encode_row(row, mapping, self.tokeniser)
        elif isinstance(encoded, InvalidIdentifier):
            raise encoded
        if dropped is not None:
            dropped.extend(encoded.dropped)
        return encoded.tokens

    def _time(self, row: SourceRow, mapping: SourceMapping, field: str, now: datetime) -> datetime:
        """The row's time (``occurred_at`` of an event, ``recorded_at`` of consent) as UTC."""
        spec = mapping.occurred_at
        return parse_timestamp(spec.read(row.values), spec, field, published_at=now,
                               bounds=self.time_bounds, zone=mapping.timezone)  # fmt: skip

    def _reference(self, row: SourceRow, mapping: SourceMapping) -> str:
        local = row.values.get(mapping.reference)
        # White space alone is no reference (as ``fedbroker link`` has it): taken as one,
        # every such row of a type and time had one event id, and all but one were lost.
        if local is None or not local.strip():
            raise InvalidIdentifier("reference", "missing")
        return opaque_reference(self.reference_key, self.council, mapping.system, local)

    def event(
        self,
        row: SourceRow,
        mapping: SourceMapping,
        *,
        now: datetime,
        dropped: list[DroppedField] | None = None,
        encoded: EncodedRow | InvalidIdentifier | None = None,
        sealer: BatchSealer | None = None,
    ) -> CitizenEvent:
        """Build one citizen event (``envelope`` signs it); ``InvalidIdentifier`` for a bad row.

        ``dropped``, when given, receives the identifiers left out as malformed.
        ``encoded``, when given, is the row's ``encode_rows`` result from a
        batch (the same tokens ``encode_row`` would make, Bloom-encoded in one
        pass with the rest of the batch); default None: encoded here.
        ``sealer``, when given, seals the payloads with one encapsulation per
        recipient for the whole batch (same wire format); default None: one
        ``seal_payload`` each.
        """
        assert mapping.event_type is not None
        tokens = self._identity_and_tokens(row, mapping, dropped, encoded)
        code = mapping.event_type.read(row.values)
        event_type = _member(EventType, code, "event_type")
        occurred_at = self._time(row, mapping, "occurred_at", now)
        source_ref = self._reference(row, mapping)
        event_id = citizen_event_id(
            self.council, mapping.system, source_ref, event_type, occurred_at
        )
        spec = EVENT_CATALOGUE[event_type]
        attributes = _attributes(row, mapping, spec.attributes, dropped)
        event = CitizenEvent(
            event_id=event_id,
            source_council=self.council,
            source_system=mapping.system,
            event_type=event_type,
            occurred_at=occurred_at,
            published_at=now,
            key_epoch=tokens.epoch,
            source_ref=source_ref,
            tokens=tokens.tokens,
            blocking_tokens=tokens.blocking_tokens,
            fuzzy=tokens.fuzzy,
            attributes=attributes,
            sealed=self._seal(event_id, event_type, _payload(row, mapping), sealer),
            encoding=ENCODING,
        )
        return event

    def _seal(
        self,
        event_id: str,
        event_type: EventType,
        payload: Mapping[str, str],
        sealer: BatchSealer | None,
    ) -> tuple[SealedPayload, ...]:
        seal = seal_payload if sealer is None else sealer.seal_payload
        sealed = []
        for index, (agreement, allowed) in enumerate(self._seal_plan(event_type)):
            fields = {k: v for k, v in payload.items() if k in allowed}
            if not fields:
                continue
            for recipient, key in self._recipient_keys(event_type, index, agreement):
                sealed.append(
                    seal(key, fields, event_id=event_id, agreement_id=agreement.agreement_id,
                         recipient=recipient)
                )  # fmt: skip
        return tuple(sealed)

    def _seal_plan(self, event_type: EventType) -> tuple[tuple[Agreement, frozenset[str]], ...]:
        """Each agreement an event type falls under, with the fields it allows."""
        plan = self._seal_plans.get(event_type)
        if plan is None:
            plan = self._seal_plans[event_type] = tuple(
                (agreement, agreement.allowed_fields(event_type))
                for agreement in agreements_for(self.directory, event_type, self.council)
            )
        return plan

    def _recipient_keys(
        self, event_type: EventType, index: int, agreement: Agreement
    ) -> tuple[tuple[str, X25519PublicKey], ...]:
        """An agreement's recipients that have a sealing key, sorted; looked up when first
        needed, as before (a recipient missing from the directory fails that row only)."""
        keys = self._recipients.get((event_type, index))
        if keys is None:
            keys = self._recipients[(event_type, index)] = tuple(
                (recipient, key)
                for recipient in sorted(agreement.recipients)
                if (key := self.directory.member(recipient).sealing_key) is not None
            )
        return keys

    def consent(
        self,
        row: SourceRow,
        mapping: SourceMapping,
        *,
        now: datetime,
        dropped: list[DroppedField] | None = None,
        encoded: EncodedRow | InvalidIdentifier | None = None,
    ) -> ConsentRecord:
        """Build one consent record (same tokens as the subject's events); ``envelope`` signs it.

        ``dropped`` and ``encoded`` as for ``event``.
        """
        assert mapping.scope is not None and mapping.state is not None
        tokens = self._identity_and_tokens(row, mapping, dropped, encoded)
        scope = mapping.scope.read(row.values)
        if scope is None:
            raise InvalidIdentifier("scope", "missing")
        if scope not in consent_scopes(self.directory):
            # A free-text cell (a clerk's note, a resident's name) must never be
            # signed and published as the scope: only the directory's own names.
            raise InvalidIdentifier("scope", "unknown-scope")
        state = _member(ConsentState, mapping.state.read(row.values), "state")
        recorded_at = self._time(row, mapping, "recorded_at", now)
        source_ref = self._reference(row, mapping)
        record = ConsentRecord(
            record_id=event_id_for(
                self.council,
                mapping.system,
                source_ref,
                scope,
                state.value,
                recorded_at.isoformat(),
            ),
            council=self.council,
            tokens=tokens.tokens,
            blocking_tokens=tokens.blocking_tokens,
            scope=scope,
            state=state,
            recorded_at=recorded_at,
            published_at=now,
            key_epoch=tokens.epoch,
        )
        return record

    def envelope(self, record: CitizenEvent | ConsentRecord, codec: Codec) -> bytes:
        """The record as this council publishes it: a ``SignedEnvelope`` it signed."""
        domain = (
            SignatureDomain.EVENT if isinstance(record, CitizenEvent) else SignatureDomain.CONSENT
        )
        return seal_envelope(domain, record, self.signing_key, self.council, codec=codec)


_Member = TypeVar("_Member", EventType, ConsentState)


def _member(kind: type[_Member], code: str | None, field: str) -> _Member:
    """``kind``'s member for a mapped code, or ``InvalidIdentifier(field, "unknown")``.

    Raised after the ``except``: raised inside it, the enum's ``ValueError``
    (``'<the cell>' is not a valid EventType``) would be chained to it.
    """
    try:
        member: _Member | None = kind(code or "")
    except ValueError:
        member = None
    if member is None:
        raise InvalidIdentifier(field, "unknown")
    return member


def _payload(row: SourceRow, mapping: SourceMapping) -> dict[str, str]:
    """The clear fields a recipient might be granted, as the council's system holds them."""
    columns = {**mapping.identity, **mapping.payload}
    return {name: value for name, column in columns.items() if (value := row.values.get(column))}


def _attributes(
    row: SourceRow,
    mapping: SourceMapping,
    carried: frozenset[str],
    dropped: list[DroppedField] | None,
) -> dict[str, str]:
    """The row's attributes its event type carries, each a code of its vocabulary.

    A value outside the vocabulary (free text typed in a code column) is left
    out and reported as dropped, never published: attributes travel in clear
    (``schemas.ATTRIBUTE_VALUES``).
    """
    attributes: dict[str, str] = {}
    for name, column in sorted(mapping.attributes.items()):
        value = row.values.get(column)
        if name not in carried or value is None:
            continue
        code = canonical_attribute(name, value)
        if code is None:
            if dropped is not None:
                dropped.append(DroppedField(name, "value-not-allowed"))
            continue
        attributes[name] = code
    return attributes
