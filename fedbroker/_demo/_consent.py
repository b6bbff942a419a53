"""Residents who object: so the demo's "none that consent forbids" is tested, not vacuous.

Some of the people the multiple-disadvantage agreement would disclose (chosen
by the seed) object at their home council before any of their events arrive.
Their home council's connector publishes the objection like any consent
record; the demo waits until the broker has read it, then streams the events,
and the summary fails if any such person is disclosed under that agreement.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from consent import Directory
from fedbroker._demo._truth import TruthRow, expected_disclosures

__all__ = ["OBJECTED_AGREEMENT", "choose_objectors", "write_objections"]

OBJECTED_AGREEMENT = "gm-multiple-disadvantage"
#: Share of that agreement's subjects who object.
OBJECTING_SHARE = 0.3
_TYPE = "rent-arrears"  # the home council's event in the synthetic pattern


def choose_objectors(
    truth: Iterable[TruthRow], directory: Directory, watched: Iterable[str], seed: int
) -> list[str]:
    """Person ids, reproducibly from the seed (at least one when anyone qualifies)."""
    people = sorted(
        {
            p
            for a, _, p in expected_disclosures(truth, directory, watched)
            if a == OBJECTED_AGREEMENT
        }
    )
    if not people:
        return []
    count = max(1, round(len(people) * OBJECTING_SHARE))
    return sorted(random.Random(f"objectors/{seed}").sample(people, count))


def write_objections(
    folder: Path,
    files: Mapping[str, Path],
    person_of: Mapping[tuple[str, str], str],
    objectors: Iterable[str],
    event_mapping: Mapping[str, Any],
) -> tuple[Path, dict[str, Path]]:
    """A consent mapping and, per council, a pending file of its residents' objections.

    The identity columns are the council's own row for the person, so the
    objection carries the same exact tokens as that person's events there.
    """
    wanted, pending = set(objectors), {}
    folder.mkdir(parents=True, exist_ok=True)
    for council, path in files.items():
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [
                r
                for r in csv.DictReader(handle)
                if r["event"] == _code(event_mapping) and person_of[(council, r["ref"])] in wanted
            ]
        if not rows:
            continue
        target = folder / f"{council}-objections.csv"
        with target.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=[*rows[0], "agreement", "choice"])
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, "ref": f"objection-{row['ref']}",
                                 "agreement": OBJECTED_AGREEMENT, "choice": "O"})  # fmt: skip
        pending[council] = target
    mapping = {k: v for k, v in event_mapping.items() if k not in ("event_type", "payload")}
    mapping.update(
        system="consent-register", record="consent", scope={"column": "agreement"},
        state={"column": "choice", "values": {"O": "objected"}},
    )  # fmt: skip
    mapping_path = folder / "consent-mapping.yaml"
    mapping_path.write_text(yaml.safe_dump(mapping, sort_keys=False), encoding="utf-8")
    return mapping_path, pending


def _code(event_mapping: Mapping[str, Any]) -> str:
    values: Mapping[str, str] = event_mapping["event_type"]["values"]
    return next(code for code, kind in values.items() if kind == _TYPE)
