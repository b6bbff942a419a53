"""Everything the demo writes before it starts a process: federation, data, configs, truth.

All of it follows from the seed (people, rows, errors, linkage key, slices); only
the signing and sealing keys are fresh each run, and they change signatures,
not what is matched or disclosed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml

from connectors import LinkageKey, SyntheticFederation, generate_federation, opaque_reference
from consent import DevFederation, build_dev_federation, write_secret_file
from fedbroker._demo._consent import OBJECTED_AGREEMENT, choose_objectors, write_objections
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
    consent_inboxes: dict[str, Path]
    pending_consent: dict[str, Path]
    forbidden: frozenset[tuple[str, str]]  # (agreement, person) that consent forbids
    watched: tuple[str, ...] = WATCHED


def prepare(
    work: Path,
    prefix: str,
    *,
    bootstrap: str,
    people: int,
    seed: int,
    duration_s: float,
    security: Callable[[str], dict[str, str] | None] = lambda council: None,
) -> DemoSetup:
    """Write the run's federation, data, connector configs and truth under ``work``.

    ``security`` gives a council's ``kafka.security`` block (file paths), or None
    on a plaintext cluster.
    """
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
    with synth.truth.open(newline="", encoding="utf-8") as handle:
        person = {(r["council"], r["ref"]): r["person_id"] for r in csv.DictReader(handle)}
    refs: dict[tuple[str, str], tuple[str, str]] = {}
    truth_only = _truth(synth, key, codes, person)
    objectors = choose_objectors([k.row for k in truth_only], federation.load(), WATCHED, seed)
    consent_mapping, pending = write_objections(
        work / "consent-pending", synth.files, person, objectors, mapping
    )
    consent_inboxes = {}
    for council in COUNCILS:
        inbox = work / council / "inbox"
        inbox.mkdir(parents=True)
        consent_inboxes[council] = work / council / "consent"
        consent_inboxes[council].mkdir()
        signing = federation.keys[council].signing
        assert signing is not None  # every council has a signing key
        config = work / council / "connector.yaml"
        kafka: dict[str, object] = {"bootstrap": bootstrap, "topic_prefix": prefix}
        if (credentials := security(council)) is not None:
            kafka["security"] = credentials
        config.write_text(yaml.safe_dump({
            "council": council, "directory": str(federation.directory_path),
            "trust_anchor": str(federation.trust_anchor), "signing_key": str(signing.private),
            "linkage_keys": str(keys), "outbox": str(work / council / "outbox.sqlite"),
            "poll_interval_s": 0.5,
            "kafka": kafka,
            "sources": [{"name": "revenues", "kind": "csv", "path": str(inbox),
                         "mapping": str(synth.mapping)},
                        {"name": "consent", "kind": "csv",
                         "path": str(consent_inboxes[council]),
                         "mapping": str(consent_mapping)}],
        }))  # fmt: skip
        configs[council], inboxes[council] = config, inbox
        refs.update({(r.council, r.local_ref): (r.council, r.source_ref) for r in truth_only
                     if r.council == council})  # fmt: skip
    return DemoSetup(
        work, prefix, federation, synth, feeds, configs, inboxes,
        tuple(r.row for r in truth_only), refs, consent_inboxes, pending,
        frozenset((OBJECTED_AGREEMENT, p) for p in objectors),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Known:
    row: TruthRow
    local_ref: str

    @property
    def council(self) -> str:
        return self.row.council

    @property
    def source_ref(self) -> str:
        return self.row.source_ref


def _truth(
    synth: SyntheticFederation,
    key: LinkageKey,
    codes: dict[str, str],
    person: dict[tuple[str, str], str],
) -> list[_Known]:
    known = []
    for council in synth.councils:
        with synth.files[council].open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                opaque = opaque_reference(key, council, SYSTEM, row["ref"])
                truth_row = TruthRow(
                    council=council,
                    source_ref=opaque,
                    person_id=person[(council, row["ref"])],
                    event_type=codes.get(row["event"], ""),
                    occurred=date.fromisoformat(row["event_date"]),
                )
                known.append(_Known(truth_row, row["ref"]))
    return known
