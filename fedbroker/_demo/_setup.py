"""Everything the demo writes before it starts a process: federation, data, configs, truth.

All of it follows from the seed (people, rows, errors, linkage key, slices); only
the signing and sealing keys are fresh each run, and they change signatures,
not what is matched or disclosed.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml

from connectors import SyntheticFederation, generate_federation, opaque_reference
from consent import DevFederation, build_dev_federation, write_secret_file
from fedbroker._demo._plan import CouncilFeed, seeded_linkage_key, slice_count
from fedbroker._demo._truth import TruthRow

__all__ = ["COUNCILS", "SYSTEM", "WEBHOOK_SERVICE", "DemoSetup", "prepare"]

COUNCILS = ("E08000003", "E08000006", "E08000009")  # Manchester, Salford, Trafford
#: The synthetic extracts' source system, as their mapping names it.
SYSTEM = "synthetic"
#: The service that receives by webhook; the councils' revenues teams get JSON Lines.
WEBHOOK_SERVICE = "gmca.supporting-families"
WATCHED = (*(f"{c}.revenues" for c in COUNCILS), WEBHOOK_SERVICE)


@dataclass(frozen=True, slots=True)
class DemoSetup:
    """The files of one run and the truth about them (references are opaque)."""

    work: Path
    prefix: str
    federation: DevFederation
    synth: SyntheticFederation
    feeds: tuple[CouncilFeed, ...]
    connector_configs: dict[str, Path]
    inboxes: dict[str, Path]
    truth: tuple[TruthRow, ...]
    refs: dict[tuple[str, str], tuple[str, str]]  # (council, local ref) -> (council, opaque)
    watched: tuple[str, ...] = WATCHED


def prepare(
    work: Path, prefix: str, *, bootstrap: str, people: int, seed: int, duration_s: float
) -> DemoSetup:
    federation = build_dev_federation(work / "federation", councils=list(COUNCILS))
    synth = generate_federation(work / "councils", councils=COUNCILS, people=people, seed=seed)
    key = seeded_linkage_key(seed)
    keys = work / "linkage-keys.json"
    write_secret_file(keys, json.dumps({str(key.epoch): key.secret.hex()}).encode())
    slices = slice_count(duration_s)
    feeds = tuple(CouncilFeed.from_csv(c, synth.files[c], slices) for c in COUNCILS)
    mapping = yaml.safe_load(synth.mapping.read_text(encoding="utf-8"))
    codes: dict[str, str] = mapping["event_type"]["values"]
    configs, inboxes = {}, {}
    truth: list[TruthRow] = []
    with synth.truth.open(newline="", encoding="utf-8") as handle:
        person = {(r["council"], r["ref"]): r["person_id"] for r in csv.DictReader(handle)}
    refs: dict[tuple[str, str], tuple[str, str]] = {}
    for council in COUNCILS:
        inbox = work / council / "inbox"
        inbox.mkdir(parents=True)
        signing = federation.keys[council].signing
        assert signing is not None  # every council has a signing key
        config = work / council / "connector.yaml"
        config.write_text(yaml.safe_dump({
            "council": council, "directory": str(federation.directory_path),
            "trust_anchor": str(federation.trust_anchor), "signing_key": str(signing.private),
            "linkage_keys": str(keys), "outbox": str(work / council / "outbox.sqlite"),
            "poll_interval_s": 0.5,
            "kafka": {"bootstrap": bootstrap, "topic_prefix": prefix},
            "sources": [{"name": "revenues", "kind": "csv", "path": str(inbox),
                         "mapping": str(synth.mapping)}],
        }))  # fmt: skip
        configs[council], inboxes[council] = config, inbox
        with synth.files[council].open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                opaque = opaque_reference(key, council, SYSTEM, row["ref"])
                refs[(council, row["ref"])] = (council, opaque)
                truth.append(
                    TruthRow(
                        council=council,
                        source_ref=opaque,
                        person_id=person[(council, row["ref"])],
                        event_type=codes.get(row["event"], ""),
                        occurred=date.fromisoformat(row["event_date"]),
                    )
                )
    return DemoSetup(work, prefix, federation, synth, feeds, configs, inboxes, tuple(truth), refs)
