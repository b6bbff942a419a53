"""From one mapped source row to its tokens, keeping what is usable.

Shared by the connector and ``fedbroker link``, so that a dry run encodes a row
exactly as the live federation would. A malformed value costs that value, not
the row: the row keeps its other identifiers, and the dropped field is named
(field and reason code, never the value) for the quarantine report, the
metrics and link's report. A row is refused only when nothing usable is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from connectors._errors import InvalidIdentifier
from connectors._mapping import SourceMapping
from connectors._normalise import DroppedField, Identity, normalise_fields
from connectors._sources import SourceRow
from connectors._tokens import Tokeniser, Tokens

__all__ = ["MAX_CELL_CHARS", "EncodedRow", "encode_row", "encode_rows", "row_tokens"]

#: No cell of a council record is this long; one that is (a lost quote that
#: swallowed the file, an attachment pasted in) refuses its row before any
#: expensive step, so it never reaches sealing or a message.
MAX_CELL_CHARS = 65_536


@dataclass(frozen=True, slots=True)
class EncodedRow:
    """A row's tokens and the identifiers dropped on the way (in canonical order)."""

    tokens: Tokens
    dropped: tuple[DroppedField, ...]


def encode_row(row: SourceRow, mapping: SourceMapping, tokeniser: Tokeniser) -> EncodedRow:
    """The tokens of one source row: its valid identifiers normalised, then tokenised.

    Raises:
        InvalidIdentifier: the row is malformed (``row``/``cell-too-large``
            when any cell exceeds ``MAX_CELL_CHARS``), or nothing usable is left to
            link on. In the latter case the error names the first dropped field
            and its reason (the cause an operator can fix), or
            ``identity``/``no-usable-identifier`` when the row had none at all.
    """
    encoded = encode_rows([row], mapping, tokeniser)[0]
    if isinstance(encoded, InvalidIdentifier):
        raise encoded
    return encoded


def encode_rows(
    rows: Sequence[SourceRow], mapping: SourceMapping, tokeniser: Tokeniser
) -> list[EncodedRow | InvalidIdentifier]:
    """``encode_row`` of each row, in order, with one batch Bloom pass for them all.

    Each row is judged alone: a refused row is its ``InvalidIdentifier`` in
    the list and costs no other row. Any other exception (a bug) propagates,
    so a caller that must not lose the batch to one row retries row by row.
    """
    results: list[EncodedRow | InvalidIdentifier | None] = [None] * len(rows)
    kept: list[tuple[int, Identity, tuple[DroppedField, ...]]] = []
    for index, row in enumerate(rows):
        try:
            identity, dropped = _normalised(row, mapping)
        except InvalidIdentifier as exc:
            results[index] = exc
            continue
        kept.append((index, identity, dropped))
    tokens = tokeniser.tokenise_many([identity for _, identity, _ in kept])
    for (index, _, dropped), made in zip(kept, tokens, strict=True):
        results[index] = _usable(made, dropped)
    return [r for r in results if r is not None]


def _normalised(
    row: SourceRow, mapping: SourceMapping
) -> tuple[Identity, tuple[DroppedField, ...]]:
    if row.malformed is not None:
        raise InvalidIdentifier("row", row.malformed)
    if any(v is not None and len(v) > MAX_CELL_CHARS for v in row.values.values()):
        raise InvalidIdentifier("row", "cell-too-large")
    lost = _unusable(row, mapping) if row.unusable else ()
    raw = {name: row.values.get(column) for name, column in mapping.identity.items()}
    raw.update({name: row.values.get(column) for name, column in mapping.extra.items()})
    identity, dropped = normalise_fields(
        raw,
        date_format=mapping.date_of_birth_format,
        free_text=mapping.free_text,
        two_digit_year_pivot=mapping.two_digit_year_pivot,
    )
    return identity, (*dropped, *lost)


def _unusable(row: SourceRow, mapping: SourceMapping) -> tuple[DroppedField, ...]:
    """The mapped values the reader could not use (``SourceRow.unusable``; None here),
    each with the reader's reason (``not-utf8``, ``duplicate-key``).

    Raises:
        InvalidIdentifier: ``<field>``/``<reason>`` when it is a value no record
            can be made without (the reference, the time, the type, scope, state).
    """
    needed = {"reference": mapping.reference}
    time = "recorded_at" if mapping.record == "consent" else "occurred_at"
    named = ((time, mapping.occurred_at), ("event_type", mapping.event_type),
             ("scope", mapping.scope), ("state", mapping.state))  # fmt: skip
    needed.update((field, spec.column) for field, spec in named if spec and spec.column)
    for field, column in needed.items():
        if column in row.unusable:
            raise InvalidIdentifier(field, row.unusable[column])
    read = {**mapping.identity, **mapping.extra, **mapping.attributes, **mapping.payload}
    return tuple(
        DroppedField(field, row.unusable[column])
        for field, column in sorted(read.items())
        if column in row.unusable
    )


def _usable(tokens: Tokens, dropped: tuple[DroppedField, ...]) -> EncodedRow | InvalidIdentifier:
    if not tokens.tokens and not tokens.blocking_tokens:
        if dropped:
            return InvalidIdentifier(dropped[0].field, dropped[0].code)
        return InvalidIdentifier("identity", "no-usable-identifier")
    return EncodedRow(tokens, dropped)


def row_tokens(row: SourceRow, mapping: SourceMapping, tokeniser: Tokeniser) -> Tokens:
    """The tokens of ``encode_row``, for callers that do not report dropped fields.

    Raises:
        InvalidIdentifier: as ``encode_row``.
    """
    return encode_row(row, mapping, tokeniser).tokens
