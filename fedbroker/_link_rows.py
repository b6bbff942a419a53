"""From one row of an extract to the ``Sighting`` the broker would hold for it.

``fedbroker link`` promises the pairs the live federation would find, so a row
must become exactly the tokens and Bloom encoding a council's connector puts on
the wire: the file is read by the connector's own ``FolderSource``, the row
mapped by the council's mapping (identity columns, ``identity.extra`` fuzzy
columns, ``free_text`` identifiers), normalised by ``normalise_identity`` and
encoded by ``Tokeniser``: ``connectors.row_tokens``, which ``EventFactory`` uses. The
token keys are then laid out as ``Sighting.from_event`` lays out a verified
event's. Nothing here normalises or encodes by itself.

A row the connector would quarantine is refused here too, as a value naming
the row and the reason code, never the offending value.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from broker import Sighting
from connectors import (
    EncodedRow,
    FolderSource,
    InvalidIdentifier,
    LinkageKey,
    SourceMapping,
    SourceRow,
    Tokeniser,
    Tokens,
    encode_rows,
    row_tokens,
)
from schemas import EventType

__all__ = ["Compact", "Refused", "RowEncoder", "compact", "expand", "read_rows"]

logger = logging.getLogger(__name__)

# The matcher ignores type and time, and a dry run keeps every sighting
# (no retention), so each sighting gets the same fixed ones.
_EVENT_TYPE = EventType.ADDRESS_CHANGE
_OCCURRED_AT = datetime(1970, 1, 1, tzinfo=UTC)


#: A sighting as plain values, to cross a process boundary (a ``Sighting``'s
#: attribute map does not pickle): event id, side, reference, key epoch,
#: exact token keys, blocking token keys, fuzzy encoding.
Compact = tuple[str, str, str, int, tuple[str, ...], tuple[str, ...], bytes | None]


def compact(sighting: Sighting) -> Compact:
    """The fields a ``RowEncoder`` sets; ``expand`` rebuilds the same sighting."""
    s = sighting
    return (s.event_id, s.source_council, s.source_ref, s.key_epoch, s.tokens, s.blocking, s.fuzzy)


def expand(values: Compact) -> Sighting:
    event_id, side, reference, epoch, tokens, blocking, fuzzy = values
    return Sighting(
        event_id=event_id,
        source_council=side,
        source_ref=reference,
        event_type=_EVENT_TYPE,
        occurred_at=_OCCURRED_AT,
        key_epoch=epoch,
        tokens=tokens,
        blocking=blocking,
        fuzzy=fuzzy,
    )


@dataclass(frozen=True, slots=True)
class Refused:
    """A row the connector would have quarantined: where it is and why, no values.

    ``reason`` is the error's stable code (``invalid-postcode``) and ``code`` the
    detail (``bad-format``), as the connector's quarantine records them.
    """

    side: str
    row: int
    reason: str
    code: str

    def describe(self) -> str:
        return f"{self.side} row {self.row}: {self.reason} ({self.code})"


def read_rows(path: Path, required: frozenset[str]) -> Iterator[SourceRow]:
    """The rows of one extract, read as the connector reads a dropped file.

    CSV, or JSON Lines when the name ends in ``.jsonl``; blank cells are missing
    values, and a row with more cells than the header is marked malformed.

    Raises:
        SourceError: the file cannot be read, or its header lacks a column in
            ``required`` (the message names the columns).
    """
    kind: Literal["csv", "jsonl"] = "jsonl" if path.suffix == ".jsonl" else "csv"
    return FolderSource(path.stem, path.parent, kind).rows(path, required)


@dataclass(frozen=True, slots=True)
class RowEncoder:
    """A council's mapping and linkage keys: rows in, sightings out."""

    mapping: SourceMapping
    tokeniser: Tokeniser

    @classmethod
    def of(cls, mapping: SourceMapping, keys: Sequence[LinkageKey]) -> RowEncoder:
        return cls(mapping, Tokeniser(tuple(keys)))

    @property
    def columns(self) -> frozenset[str]:
        """The columns linkage reads: identifiers, extra fuzzy columns, the reference.

        Narrower than ``SourceMapping.columns`` on purpose: a dry run needs no
        event type, time, attributes or payload, so extracts without them work.
        """
        mapping = self.mapping
        return frozenset([*mapping.identity.values(), *mapping.extra.values(), mapping.reference])

    def tokens(self, row: SourceRow) -> Tokens:
        """The row's tokens, as ``EventFactory`` makes them for an event.

        Raises:
            InvalidIdentifier: the row is malformed, an identifier fails
                normalisation, or nothing usable is left to link on.
        """
        return row_tokens(row, self.mapping, self.tokeniser)

    def sighting(
        self, row: SourceRow, *, side: str, dropped: list[Refused] | None = None
    ) -> Sighting | Refused:
        """The sighting of one row (``source_council`` is the side, ``source_ref``
        the row's local reference), or why the row is refused.

        Args:
            row: one row from ``read_rows``.
            side: which file it came from (``left`` or ``right``); with the row
                number it makes the event id, unique within a run.
            dropped: receives the identifiers the row was linked without, as the
                connector drops them (default None: not reported).
        """
        return self.sightings([row], side=side, dropped=dropped)[0]

    def sightings(
        self, rows: Sequence[SourceRow], *, side: str, dropped: list[Refused] | None = None
    ) -> list[Sighting | Refused]:
        """``sighting`` of each row, in order, Bloom-encoded in one batch (``encode_rows``)."""
        out: list[Sighting | Refused] = []
        for row, encoded in zip(rows, encode_rows(rows, self.mapping, self.tokeniser), strict=True):
            made = self._sighting(row, encoded, side)
            out.append(made)
            if dropped is not None and not isinstance(made, Refused):
                assert isinstance(encoded, EncodedRow)
                dropped.extend(
                    Refused(side, row.row, f"invalid-{d.field}", d.code) for d in encoded.dropped
                )
        return out

    def _sighting(
        self, row: SourceRow, encoded: EncodedRow | InvalidIdentifier, side: str
    ) -> Sighting | Refused:
        try:
            if isinstance(encoded, InvalidIdentifier):
                raise encoded
            tokens = encoded.tokens
            reference = row.values.get(self.mapping.reference)
            if reference is None or not reference.strip():
                raise InvalidIdentifier("reference", "missing")
        except InvalidIdentifier as exc:
            logger.debug("refused %s row %d: %s", side, row.row, exc.reason)
            return Refused(side, row.row, exc.reason, exc.code)
        return expand(
            (
                f"{side}:{row.row}",
                side,
                reference.strip(),
                tokens.epoch,
                # Laid out as Sighting.from_event does, so states and owners agree.
                tuple(sorted({t.key() for t in tokens.tokens})),
                tuple(sorted({t.key() for t in tokens.blocking_tokens})),
                tokens.fuzzy,
            )
        )
