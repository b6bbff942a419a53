"""Sightings from the connectors' synthetic councils, for the linkage-quality bench.

Each row is normalised and tokenised by the real connector code under a fresh
linkage key, then given to the broker's matcher exactly as a verified event
would be; rows the connector would quarantine are left out, as they would be.
"""

from __future__ import annotations

import csv
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from broker import Sighting
from connectors import (
    InvalidIdentifier,
    LinkageKey,
    Tokeniser,
    generate_federation,
    generate_linkage_key,
    load_mapping,
    normalise_identity,
)
from schemas import EventType

DEFAULT_PEOPLE = 3000


def synthetic_federation_sightings(
    *, seed: int, people: int = DEFAULT_PEOPLE, key: LinkageKey | None = None
) -> tuple[list[Sighting], dict[str, str], str]:
    """(sightings in publication order, event id -> person id, a label for the report).

    ``key`` is the linkage key to encode under (default None: a fresh random one).
    """
    with tempfile.TemporaryDirectory() as folder:
        synth = generate_federation(Path(folder), councils=3, people=people, seed=seed)
        mapping = load_mapping(synth.mapping)
        assert mapping.event_type is not None
        tokeniser = Tokeniser([key or generate_linkage_key(1)])
        with synth.truth.open(newline="", encoding="utf-8") as handle:
            person_of = {row["ref"]: row["person_id"] for row in csv.DictReader(handle)}
        sightings: list[Sighting] = []
        for council, path in synth.files.items():
            with path.open(newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    raw = {name: row[column] for name, column in mapping.identity.items()}
                    raw.update({name: row[column] for name, column in mapping.extra.items()})
                    try:
                        identity = normalise_identity(raw, date_format=mapping.date_of_birth_format)
                    except InvalidIdentifier:
                        continue
                    tokens = tokeniser.tokenise(identity)
                    sightings.append(
                        Sighting(
                            event_id=row["ref"],
                            source_council=council,
                            source_ref=row["ref"],
                            event_type=EventType(mapping.event_type.read(row) or ""),
                            occurred_at=datetime.fromisoformat(row["event_date"]).replace(
                                tzinfo=UTC
                            ),
                            key_epoch=tokens.epoch,
                            tokens=tuple(sorted({t.key() for t in tokens.tokens})),
                            blocking=tuple(sorted({t.key() for t in tokens.blocking_tokens})),
                            fuzzy=tokens.fuzzy,
                        )
                    )
    sightings.sort(key=lambda s: (s.occurred_at, s.event_id))
    subject_of = {s.event_id: person_of[s.event_id] for s in sightings}
    label = f"connectors' synthetic councils ({people} people, seed {seed}, 30% error rate)"
    return sightings, subject_of, label
