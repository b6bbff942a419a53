"""Residents' consent as the broker holds it: the latest record per token and scope.

A ``ConsentRecord`` names a subject's tokens, a scope (an agreement id,
``purpose:<name>`` or ``*``) and a state. For each token and scope only the
latest record counts, ordered by its *effective time*, then its publication
time, then refusal before grant, then ``record_id``, so that two brokers
replaying the same records in any order agree. Records a clerk dates by day
(a grant and a withdrawal both "2026-09-10") tie on effective time; the one
published later is the later act, and on a full tie the refusal wins, so the
order never falls to the hash of a record id. The effective
time is ``recorded_at`` clamped to ``published_at``: ``recorded_at`` is typed by
a clerk and a typo (2062 for 2026) would otherwise outrank every withdrawal and
erasure recorded after it, while ``published_at`` is checked against the
broker's clock on receipt, so no source can push a record's rank into the
future. ``check_times`` refuses such records at the edges; the clamp makes the
order safe even for one that slipped through. An erasure request
removes everything held about the token and leaves only a tombstone, because
without it a later event under an objection-model agreement would look like a
resident who never objected (DESIGN section 6).

Across a subject's tokens a refusal wins (``effective_consent``): a token such
as ``name+dob`` can be shared by two namesakes, so a newer grant under it may
be the other person's, while a refusal under any token the subject holds is
honoured; and a grant held only under shared tokens does not count for a
subject with an NHS or NI number token that holds none. The cost is a false
denial (a namesake's objection can deny a disclosure), never a false disclosure.

``TokenConsent`` is one token's state, small and serialisable (``to_bytes`` /
``from_bytes``) so the broker can keep it as the value of a Faust table keyed by
the token; ``ConsentLedger`` is an immutable in-memory collection of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol

from consent._errors import ConsentStateInvalid
from schemas import ConsentRecord, ConsentState

__all__ = [
    "ALL_SCOPES",
    "UNIQUE_DOMAINS",
    "ConsentEntry",
    "ConsentLedger",
    "ConsentView",
    "TokenConsent",
    "effective_consent",
    "effective_time",
    "erased_since",
]

ALL_SCOPES = "*"
_STATE_VERSION = 3  # 3: ties broken by publication and refusal; 2: by record id only
_READABLE_VERSIONS = frozenset({2, 3})  # a v2 entry ranks as published at its effective time
#: Token domains of identifiers that one person holds alone (NHS and National
#: Insurance numbers), unlike ``name+dob``, which namesakes share.
UNIQUE_DOMAINS = frozenset({"nhs", "nino"})
_REFUSALS = frozenset(
    {ConsentState.WITHDRAWN, ConsentState.OBJECTED, ConsentState.ERASURE_REQUESTED}
)


def effective_time(record: ConsentRecord) -> datetime:
    """The time a record ranks by: ``recorded_at``, never later than ``published_at``."""
    return min(record.recorded_at, record.published_at)


@dataclass(frozen=True, slots=True, order=True)
class ConsentEntry:
    """The latest record for one token and scope; ordering is the precedence order.

    ``effective_at`` is ``min(recorded_at, published_at)``; ``refusal`` is 1 for a
    withdrawal, objection or erasure and 0 for a grant (see the module's docstring).
    """

    effective_at: datetime
    published_at: datetime
    refusal: int
    record_id: str
    scope: str
    state: ConsentState
    council: str

    @classmethod
    def from_record(cls, record: ConsentRecord) -> ConsentEntry:
        return cls(
            effective_time(record),
            record.published_at,
            _refusal(record.state),
            record.record_id,
            record.scope,
            record.state,
            record.council,
        )

    def to_dict(self) -> dict[str, str]:
        return {
            "effective_at": self.effective_at.isoformat(),
            "published_at": self.published_at.isoformat(),
            "record_id": self.record_id,
            "scope": self.scope,
            "state": self.state.value,
            "council": self.council,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConsentEntry:
        try:
            effective_at = datetime.fromisoformat(data["effective_at"])
            published = data.get("published_at")
            state = ConsentState(data["state"])
            return cls(
                effective_at,
                datetime.fromisoformat(published) if published is not None else effective_at,
                _refusal(state),
                str(data["record_id"]),
                str(data["scope"]),
                state,
                str(data["council"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConsentStateInvalid("malformed consent entry") from exc


@dataclass(frozen=True, slots=True)
class TokenConsent:
    """Everything the broker holds about one token's consent.

    ``entries`` holds the latest non-erasure record per scope; ``erasure`` the
    latest erasure request, a tombstone that hides everything recorded before it.
    ``erased_until`` is the latest *publication* time of any erasure request
    applied, which need not be the tombstone's: an erasure recorded first can
    be published last, and every event published before it is state it
    removes (``erased_since``). Applying the same records in any order gives
    the same value.
    """

    entries: tuple[ConsentEntry, ...] = ()
    erasure: ConsentEntry | None = None
    erased_until: datetime | None = None

    def apply(self, record: ConsentRecord) -> TokenConsent:
        """The state after ``record``; a record older than what is held changes nothing.

        An erasure request older than the tombstone changes only ``erased_until``.
        """
        entry = ConsentEntry.from_record(record)
        erased_until = self.erased_until
        if entry.state is ConsentState.ERASURE_REQUESTED:
            erased_until = max(entry.published_at, erased_until or entry.published_at)
        if self.erasure is not None and entry <= self.erasure:
            # recorded before an erasure that already removed the subject
            return replace(self, erased_until=erased_until)
        if entry.state is ConsentState.ERASURE_REQUESTED:
            later = tuple(e for e in self.entries if e > entry)
            return TokenConsent(later, entry, erased_until)
        current = {e.scope: e for e in self.entries}
        held = current.get(entry.scope)
        if held is not None and held >= entry:
            return self
        current[entry.scope] = entry
        entries = tuple(sorted(current.values(), key=_by_scope))
        return TokenConsent(entries, self.erasure, self.erased_until)

    @property
    def erased(self) -> bool:
        """Whether an erasure request has been recorded for this token."""
        return self.erasure is not None

    def governing(self) -> tuple[ConsentEntry, ...]:
        """Every entry that can govern a decision: the per-scope ones and the tombstone."""
        return self.entries if self.erasure is None else (*self.entries, self.erasure)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "v": _STATE_VERSION,
            "entries": [e.to_dict() for e in self.entries],
            "erasure": self.erasure.to_dict() if self.erasure is not None else None,
        }
        if self.erased_until is not None:
            # An optional key, not a new version: a worker of the previous release
            # still reads the rest during a rolling upgrade.
            data["erased_until"] = self.erased_until.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TokenConsent:
        """Read what ``to_dict`` wrote; without ``erased_until``, the tombstone's publication."""
        if not isinstance(data, Mapping) or data.get("v") not in _READABLE_VERSIONS:
            raise ConsentStateInvalid("unknown consent state version")
        raw, erasure, until = data.get("entries"), data.get("erasure"), data.get("erased_until")
        if not isinstance(raw, list) or not (erasure is None or isinstance(erasure, Mapping)):
            raise ConsentStateInvalid("malformed consent state")
        entries = tuple(sorted((ConsentEntry.from_dict(e) for e in raw), key=_by_scope))
        tombstone = ConsentEntry.from_dict(erasure) if erasure is not None else None
        try:
            erased_until = datetime.fromisoformat(until) if until is not None else None
        except (TypeError, ValueError) as exc:
            raise ConsentStateInvalid("malformed consent state") from exc
        if tombstone is not None:
            erased_until = max(tombstone.published_at, erased_until or tombstone.published_at)
        return cls(entries, tombstone, erased_until)

    def to_bytes(self) -> bytes:
        """Compact JSON: the value to store in a Faust table keyed by the token."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> TokenConsent:
        try:
            return cls.from_dict(json.loads(data))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConsentStateInvalid("consent state is not valid JSON") from exc


def _by_scope(entry: ConsentEntry) -> tuple[str, ConsentEntry]:
    return entry.scope, entry


def _refusal(state: ConsentState) -> int:
    return 1 if state in _REFUSALS else 0


class ConsentView(Protocol):
    """What ``decide`` needs: the consent held for one token (a Faust table fits)."""

    def get(self, token: str) -> TokenConsent | None: ...


@dataclass(frozen=True, slots=True)
class ConsentLedger:
    """An immutable map of token -> ``TokenConsent``; ``apply`` returns a new ledger."""

    tokens: Mapping[str, TokenConsent] = field(default_factory=lambda: MappingProxyType({}))

    def get(self, token: str) -> TokenConsent | None:
        return self.tokens.get(token)

    def apply(self, record: ConsentRecord) -> ConsentLedger:
        """Apply a record to every token it names."""
        updated = dict(self.tokens)
        for token in record.tokens:
            key = token.key()
            updated[key] = updated.get(key, TokenConsent()).apply(record)
        return ConsentLedger(MappingProxyType(updated))

    @classmethod
    def from_records(cls, records: Iterable[ConsentRecord]) -> ConsentLedger:
        ledger = cls()
        for record in records:
            ledger = ledger.apply(record)
        return ledger

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.tokens))

    def to_dict(self) -> dict[str, Any]:
        return {token: self.tokens[token].to_dict() for token in sorted(self.tokens)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConsentLedger:
        return cls(MappingProxyType({k: TokenConsent.from_dict(v) for k, v in data.items()}))


def effective_consent(
    view: ConsentView,
    tokens: Iterable[str],
    *,
    agreement_id: str,
    purpose: str,
    controllers: frozenset[str],
) -> ConsentEntry | None:
    """The record that governs one subject under one agreement, or None if none does.

    A subject is known by several tokens. Under each token the latest applicable
    entry (scope the agreement, its purpose or ``*``; an erasure request under
    any scope) governs that token. A grant applies only if the council that
    recorded it is one of the agreement's ``controllers``: consent is given to
    a controller for its own processing, and a purpose or ``*`` grant admitted
    while its council supplied every agreement it covered must not count for
    one a later directory adds without it. A refusal applies whoever recorded it.

    Across tokens a refusal wins: the latest governing refusal if any token has
    one, else the latest governing grant, because a shared token (``name+dob``
    of two namesakes) may carry another person's newer grant, but never lets it
    override this subject's refusal.
    For the same reason a grant held only under shared tokens does not count
    for a subject who has a unique one (``UNIQUE_DOMAINS``) that holds none.
    """
    scopes = {agreement_id, f"purpose:{purpose}", ALL_SCOPES}
    governing: list[ConsentEntry] = []
    unique_held = unique_granted = False
    for token in tokens:
        unique = token.split(":", 1)[0] in UNIQUE_DOMAINS
        unique_held |= unique
        held = view.get(token)
        if held is None:
            continue
        applicable = [
            entry
            for entry in held.governing()
            if (entry.scope in scopes or entry.state is ConsentState.ERASURE_REQUESTED)
            and (entry.refusal or entry.council in controllers)
        ]
        if applicable:
            governing.append(max(applicable))
            unique_granted |= unique
    refusals = [entry for entry in governing if entry.refusal]
    if refusals:
        return max(refusals)
    if unique_held and not unique_granted:
        # Only shared tokens carry a grant: it may be a namesake's (another NHS
        # number, same name and birth date), so it is not this subject's consent.
        return None
    return max(governing, default=None)


def erased_since(view: ConsentView, tokens: Iterable[str], published_at: datetime) -> bool:
    """Whether an erasure under any of ``tokens`` was published at or after ``published_at``.

    An event published before its subject's erasure is state the erasure
    removed, whenever it is read: councils' topics are read at their own pace,
    so it may arrive after the erasure. Any erasure counts, not only the one
    that ranks latest (``TokenConsent.erased_until``): one recorded first may
    be published last. Any token counts, as for ``effective_consent`` a
    refusal under any of them does.
    """
    for token in tokens:
        held = view.get(token)
        if held is not None and held.erased_until is not None:
            if held.erased_until >= published_at:
                return True
    return False
