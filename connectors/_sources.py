"""What every source yields: one record as text values by column, and where it came from.

Sources only read; they never decide what a row means (the mapping does) and
never move a high-water mark themselves: the pipeline does that in the outbox
transaction, so a crash cannot skip rows. Files dropped in a watched folder are
read by ``connectors._folder_source``, a PostgreSQL table by
``connectors._postgres_source``; both yield ``SourceRow``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["MalformedReason", "SourceRow"]

#: Why a reader could not parse a record; a closed set, never a source value.
MalformedReason = Literal[
    "unparseable",
    "extra-cells",
    "missing-cells",
    "unclosed-quote",
    "not-json",
    "not-an-object",
    "line-too-long",
]


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One record as text values by column, and where it came from (for quarantine).

    ``malformed`` is the reader's reason code for a record it could not parse.
    It is kept out of ``values`` on purpose: an in-band marker key is a key a
    source row can carry too, which once let a clear value become a reason
    code and a metric label.
    """

    location: str
    row: int
    values: Mapping[str, str | None]
    malformed: MalformedReason | None = None
    #: Columns whose value could not be used, and why: ``not-utf8`` (a byte that is
    #: not UTF-8, or half a surrogate pair), ``duplicate-key`` (a JSON key given twice
    #: with different values). Their value is None here; each the mapping reads is
    #: reported as dropped with that code.
    unusable: Mapping[str, str] = field(default_factory=dict)
