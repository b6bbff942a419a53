"""Every partition sees every subject's consent: a global table keyed by exact token.

A disclosure is decided in the partition of the token that owns the pair, which
may be a blocking token or an exact token the consent source could not compute
(a council without the NHS number records consent under name and date of birth
only). Consent records are few next to events, so every worker keeps all of
them, by exact token, in a Faust ``GlobalTable`` (DESIGN section 10; the other
choice, routing each candidate disclosure through its subjects' partitions,
adds a hop per subject token and moves the decision away from its audit chain).

One writer per key keeps the table consistent: a consent record is routed by
each of its tokens, and the entry of exact token ``K`` is written only by the
partition the record reached under ``K`` itself, so the entry's every version
goes to one changelog partition, in order. ``ConsentTableView`` reads the table
through ``consent.ConsentView`` and keeps decoded entries while their stored
bytes are unchanged.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from consent import ConsentLedger, TokenConsent
from schemas import ConsentRecord

__all__ = ["ConsentTableView", "own_entry"]

_CACHED = 10_000


@dataclass
class ConsentTableView:
    """``consent.ConsentView`` over a table of ``TokenConsent`` bytes by exact token."""

    table: Mapping[str, bytes | None]
    _decoded: OrderedDict[str, tuple[bytes, TokenConsent]] = field(default_factory=OrderedDict)

    def get(self, token: str) -> TokenConsent | None:
        stored = self.table.get(token)
        if not stored:
            return None
        held = self._decoded.get(token)
        if held is not None and held[0] == stored:
            return held[1]
        value = TokenConsent.from_bytes(stored)
        self._decoded[token] = (stored, value)
        while len(self._decoded) > _CACHED:
            self._decoded.popitem(last=False)
        return value

    def ledger_for(self, record: ConsentRecord) -> ConsentLedger:
        """What is held for the record's exact tokens, as a ledger to apply it to."""
        held = {t.key(): self.get(t.key()) for t in record.tokens}
        return ConsentLedger({k: v for k, v in held.items() if v is not None})


def own_entry(token: str, record: ConsentRecord, updated: ConsentLedger) -> bytes | None:
    """The bytes to write under ``token`` after ``record``, if this partition owns that key.

    Only the partition the record reached under one of its exact tokens writes
    that token's entry (one writer per key); under a blocking token nothing is written.
    """
    if token not in {t.key() for t in record.tokens}:
        return None
    entry = updated.get(token)
    return entry.to_bytes() if entry is not None else None
