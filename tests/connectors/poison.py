"""One file with one row of each poison kind between good rows, and what must become of each.

Used by the ingest test (no Kafka) and the end-to-end test (real Kafka), so
both judge the same rows against the same expectations.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from connectors import nhs_number

BAD_NHS = "9434765918"  # fails the modulus-11 check
FUTURE = "2062-09-01T10:00:00"  # a clerk's 2062 for 2026
HUGE = "Zed" * 40_000  # 120,000 characters: over the cell cap
_NAMES = [("Ann", "Lee"), ("Jane", "Lord"), ("Bo", "Wu"), ("Cara", "Sir"), ("Dev", "Patel"),
          ("Eli", "Okafor"), ("Fay", "Dame"), ("Gus", "Novak"), ("Hal", "Byrne"),
          ("Ida", "Quinn"), ("Jo", "Rossi")]  # fmt: skip

EVENTS_MAPPING = {
    "system": "revenues",
    "identity": {"given_name": "forename", "family_name": "surname", "date_of_birth": "dob",
                 "postcode": "postcode", "nhs_number": "nhs_no"},
    "date_of_birth_format": ["%d/%m/%Y", "%Y-%m-%d"],
    "reference": "ref",
    "event_type": {"column": "event", "values": {"MOVE": "address-change"}},
    "occurred_at": {"column": "when"},
}  # fmt: skip
CONSENT_MAPPING = {
    "system": "consent-register",
    "record": "consent",
    "identity": {"given_name": "first", "family_name": "last", "date_of_birth": "dob",
                 "nhs_number": "nhs"},
    "reference": "ref",
    "occurred_at": {"column": "at"},
    "scope": {"column": "agreement"},
    "state": {"column": "choice", "values": {"Y": "granted", "N": "withdrawn", "O": "objected"}},
}  # fmt: skip


@dataclass(frozen=True)
class PoisonFile:
    """The lines to write, and what the connector must make of them."""

    lines: list[str]
    good_refs: set[str]
    #: (row, field, reason) of every row that must be quarantined
    quarantined: set[tuple[int, str, str]]
    #: (row, field, reason) of every identifier dropped from a row that was kept
    dropped: set[tuple[int, str, str]]
    #: clear values that must appear in no quarantine, log line or metric
    secrets: list[str]


def _person(index: int, rng: random.Random, when: str) -> dict[str, str]:
    given, family = _NAMES[index % len(_NAMES)]
    return {"ref": f"good-{index}", "forename": given, "surname": family,
            "dob": f"{1 + index:02d}/03/1971", "postcode": "M1 1AE",
            "nhs_no": nhs_number(rng), "event": "MOVE", "when": when}  # fmt: skip


def poison_events(now: datetime | None = None) -> PoisonFile:
    """JSON Lines: good rows with one poisoned row between each pair."""
    rng = random.Random(11)
    when = ((now or datetime.now(UTC)) - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%S")
    good = [_person(i, rng, when) for i in range(10)]
    base = dict(good[0], ref="poison")
    poisons: list[tuple[str, tuple[str, str] | None]] = [
        (json.dumps(dict(base, ref="p-future", when=FUTURE)),
         ("occurred_at", "occurred-in-future")),
        (json.dumps(dict(base, ref="p-overflow", when="0001-01-01T00:00:00+01:00")),
         ("occurred_at", "out-of-range")),
        (json.dumps(dict(base, ref="p-9999", when="9999-12-31")), ("occurred_at", "out-of-range")),
        (json.dumps({"ref": "p-nhs-only", "nhs_no": BAD_NHS, "event": "MOVE", "when": when}),
         ("nhs_number", "bad-check-digit")),
        (json.dumps({}), ("identity", "no-usable-identifier")),
        (json.dumps({k: "" for k in base}), ("identity", "no-usable-identifier")),
        (json.dumps(dict(base, ref="p-huge", forename=HUGE)), ("row", "cell-too-large")),
        ("{not json, " + good[0]["surname"], ("row", "not-json")),
        (json.dumps(dict(base, ref="p-1800", when="1800-01-01")),
         ("occurred_at", "occurred-before-floor")),
    ]  # fmt: skip
    lines: list[str] = []
    quarantined: set[tuple[int, str, str]] = set()
    dropped: set[tuple[int, str, str]] = set()
    for index, person in enumerate(good):
        if index == 1:  # only its NHS number is malformed: the row is kept without it
            person = dict(person, nhs_no=BAD_NHS)
            dropped.add((len(lines) + 1, "nhs_number", "bad-check-digit"))
        lines.append(json.dumps(person))
        if index < len(poisons):
            line, expected = poisons[index]
            lines.append(line)
            if expected is not None:
                quarantined.add((len(lines), *expected))
    return PoisonFile(
        lines=lines,
        good_refs={p["ref"] for p in good},
        quarantined=quarantined,
        dropped=dropped,
        secrets=[BAD_NHS, FUTURE, HUGE[:60], "0001-01-01T00:00:00+01:00", "9999-12-31"],
    )


def poison_consent(now: datetime | None = None) -> PoisonFile:
    """CSV consent choices: a future-dated one and one before the federation began."""
    at = ((now or datetime.now(UTC)) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S")
    rows = [
        ("c1", "Ann", "Lee", "1970-01-02", "9434765919", "O", at, None),
        ("c2", "Ann", "Lee", "1970-01-02", "9434765919", "Y", FUTURE,
         ("recorded_at", "recorded-in-future")),
        ("c3", "Jane", "Lord", "1971-02-03", "", "N", at, None),
        ("c4", "Jane", "Lord", "1971-02-03", "", "Y", "2001-01-01T00:00:00",
         ("recorded_at", "recorded-before-floor")),
        ("c5", "Bo", "Wu", "1972-03-04", "", "O", "0001-01-01T00:00:00+01:00",
         ("recorded_at", "out-of-range")),
        ("c6", "Bo", "Wu", "1972-03-04", "", "N", at, None),
    ]  # fmt: skip
    lines = ["ref,first,last,dob,nhs,agreement,choice,at"]
    quarantined = set()
    for number, (ref, first, last, dob, nhs, choice, when, expected) in enumerate(rows, start=1):
        lines.append(f"{ref},{first},{last},{dob},{nhs},gm-multiple-disadvantage,{choice},{when}")
        if expected is not None:
            quarantined.add((number, *expected))
    return PoisonFile(
        lines=lines,
        good_refs={r[0] for r in rows if r[-1] is None},
        quarantined=quarantined,
        dropped=set(),
        secrets=[FUTURE, "2001-01-01T00:00:00"],
    )


def write_mappings(folder: Path) -> tuple[Path, Path]:
    events, consent = folder / "events.yaml", folder / "consent.yaml"
    events.write_text(yaml.safe_dump(EVENTS_MAPPING))
    consent.write_text(yaml.safe_dump(CONSENT_MAPPING))
    return events, consent
