"""What the synthetic ground truth says the services should have received, and whether they did.

The generator knows which person each row is; the agreements say which events,
from how many councils, make a disclosure and who receives it. From those two
the demo derives, per watched service, the people it should hear about, and
compares what each subscriber actually handed over: by notification id (never
twice), by person (found, missed, wrongly joined) and against consent (never a
disclosure a resident's objection or withdrawal forbids). Pure: no Kafka, no files.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date

from consent import Agreement, Directory, route

__all__ = ["Delivery", "TruthReport", "TruthRow", "compare", "expected_disclosures"]

#: (agreement id, service id, person id): one person a service should hear about.
Disclosure = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class TruthRow:
    """One synthetic source row as the ground truth knows it (no personal data)."""

    council: str
    source_ref: str
    person_id: str
    event_type: str
    occurred: date


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification as a subscriber handed it over: its id and its events' references."""

    service: str
    notification_id: str
    agreement_id: str
    refs: tuple[tuple[str, str], ...]  # (council, opaque source reference)


@dataclass(frozen=True, slots=True)
class TruthReport:
    """The comparison; ``ok`` is the demo's verdict on delivery and consent."""

    expected: int
    found: int
    missed: int
    wrongly_joined: int
    duplicates: int
    forbidden: int
    undelivered: int

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.forbidden or self.undelivered)

    @property
    def recall(self) -> float:
        return self.found / self.expected if self.expected else 1.0


def _qualifies(agreement: Agreement, rows: list[TruthRow]) -> list[TruthRow]:
    types = {t.value for t in agreement.match.event_types}
    kept = [r for r in rows if r.event_type in types]
    councils = {r.council for r in kept}
    if len(kept) < agreement.match.count_min:
        return []
    if len(councils) < agreement.match.distinct_sources_min:
        return []
    return kept


def expected_disclosures(
    rows: Iterable[TruthRow], directory: Directory, watched: Iterable[str]
) -> set[Disclosure]:
    """Every (agreement, service, person) the truth and the agreements call for, watched only."""
    services = set(watched)
    people: dict[str, list[TruthRow]] = defaultdict(list)
    for row in rows:
        people[row.person_id].append(row)
    expected: set[Disclosure] = set()
    for person, events in people.items():
        for agreement_id, agreement in sorted(directory.agreements.items()):
            kept = _qualifies(agreement, events)
            if not kept:
                continue
            latest = max(kept, key=lambda r: (r.occurred, r.council))
            recipients = route(
                agreement,
                directory,
                source_councils={r.council for r in kept},
                destination_council=latest.council,
            )
            expected.update((agreement_id, s, person) for s in recipients if s in services)
    return expected


def compare(
    expected: set[Disclosure],
    deliveries: Iterable[Delivery],
    *,
    truth: Mapping[tuple[str, str], str],
    published: Mapping[str, set[str]],
    forbidden: AbstractSet[tuple[str, str]] = frozenset(),
) -> TruthReport:
    """Compare what subscribers handed over with the truth and with the topics.

    Args:
        expected: from ``expected_disclosures``.
        deliveries: every hand-over seen, in order, duplicates included.
        truth: (council, source reference) -> person id.
        published: service -> notification ids the broker put on its topic; each
            must have been handed over (else ``undelivered``).
        forbidden: (agreement id, person id) pairs that consent forbids.
    """
    seen = Counter((d.service, d.notification_id) for d in deliveries)
    duplicates = sum(n - 1 for n in seen.values())
    got: set[Disclosure] = set()
    wrong = forbidden_count = 0
    unique = {(d.service, d.notification_id): d for d in deliveries}
    for delivery in unique.values():
        persons = {truth.get(ref, "?") for ref in delivery.refs}
        if len(persons) != 1 or "?" in persons:
            wrong += 1
            continue
        person = persons.pop()
        if (delivery.agreement_id, person) in forbidden:
            forbidden_count += 1
        got.add((delivery.agreement_id, delivery.service, person))
    undelivered = sum(
        1 for service, ids in published.items() for i in ids if (service, i) not in seen
    )
    found = len(expected & got)
    return TruthReport(
        expected=len(expected),
        found=found,
        missed=len(expected) - found,
        wrongly_joined=wrong + len(got - expected),
        duplicates=duplicates,
        forbidden=forbidden_count,
        undelivered=undelivered,
    )
