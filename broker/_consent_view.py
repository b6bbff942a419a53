"""Every partition sees every subject's consent: each keeps a full copy, by exact token.

A disclosure is decided in the partition of the token that owns the pair, which
may be a blocking token or an exact token the consent source could not compute
(a council without the NHS number records consent under name and date of birth
only). Consent records are few next to events, so the verify agent broadcasts
each one to every routed partition, and each partition applies it to its own
copy, held in an ordinary partitioned Faust table keyed by exact token (the
changelog write of a table goes to the partition of the message being handled,
so each partition's copy is recovered with that partition wherever it moves).
Within a partition the broadcast is ordered with the events routed there, so a
withdrawal applies to every disclosure that partition decides after reading it
(DESIGN sections 6 and 10). A Faust ``GlobalTable`` was tried first and stalled
groups of more than one worker; the other choice, routing each candidate
disclosure through its subjects' partitions, adds a hop per subject token and
moves the decision away from its audit chain. ``ConsentTableView`` reads the
copy through ``consent.ConsentView`` and keeps decoded entries while their
stored bytes are unchanged.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from consent import ConsentLedger, ConsentView, TokenConsent
from schemas import ConsentRecord

__all__ = ["ConsentTableView", "ItemConsent", "applied_entries"]

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


@dataclass
class ItemConsent:
    """One event item's reads of the consent copy: each token read from the table once.

    Each (event, token) step of an item asks whether the event's subject was
    erased since it was published, under each of its exact tokens, and each
    decision reads its subjects' consent: the same few tokens, each a RocksDB
    read, again at every step. Only consent items write the consent table, so
    while one event item is handled (synchronously, in one partition) the
    answers cannot change; a new ``ItemConsent`` is made for each item.
    """

    view: ConsentView
    _read: dict[str, TokenConsent | None] = field(default_factory=dict)

    def get(self, token: str) -> TokenConsent | None:
        if token in self._read:
            return self._read[token]
        held = self._read[token] = self.view.get(token)
        return held


def applied_entries(view: ConsentTableView, record: ConsentRecord) -> dict[str, bytes]:
    """The entries to write after ``record``: its exact tokens whose consent it changes.

    Applying is idempotent and order-independent (``TokenConsent.apply``), so a
    record seen again (a re-delivery, or its token route after its broadcast)
    writes nothing.
    """
    changed: dict[str, bytes] = {}
    for token in dict.fromkeys(t.key() for t in record.tokens):
        held = view.get(token)
        updated = (held if held is not None else TokenConsent()).apply(record)
        if updated != held:
            changed[token] = updated.to_bytes()
    return changed
