"""The demo's objectors: chosen by the seed, written as a mapping the connector accepts."""

from __future__ import annotations

import csv
from datetime import date

import yaml

from connectors import generate_federation, parse_mapping
from consent import build_dev_federation
from fedbroker._demo._consent import OBJECTED_AGREEMENT, choose_objectors, write_objections
from fedbroker._demo._truth import TruthRow

A, B = "E08000003", "E08000006"
WATCHED = ("gmca.supporting-families",)


def rows(person, day):
    return [
        TruthRow(A, f"{person}a", person, "rent-arrears", date(2026, 10, day)),
        TruthRow(B, f"{person}b", person, "council-tax-arrears", date(2026, 10, day)),
        TruthRow(B, f"{person}c", person, "persistent-absence", date(2026, 10, day)),
    ]


def test_objectors_follow_the_seed_and_come_from_that_agreements_subjects(tmp_path):
    directory = build_dev_federation(tmp_path / "fed", councils=[A, B]).load()
    truth = [r for i in range(10) for r in rows(f"P{i}", i + 1)]
    truth.append(TruthRow(A, "x", "LONER", "rent-arrears", truth[0].occurred))
    chosen = choose_objectors(truth, directory, WATCHED, 7)
    assert chosen == choose_objectors(truth, directory, WATCHED, 7)
    assert len(chosen) == 3 and "LONER" not in chosen
    assert choose_objectors(truth[:3], directory, WATCHED, 7) == ["P0"]  # at least one
    assert choose_objectors(truth, directory, ["E08000003.revenues"], 7) == []


def test_objections_carry_the_home_rows_identity_and_a_consent_mapping(tmp_path):
    synth = generate_federation(tmp_path / "data", councils=[A, B], people=80, seed=5)
    with synth.truth.open(newline="", encoding="utf-8") as handle:
        person = {(r["council"], r["ref"]): r["person_id"] for r in csv.DictReader(handle)}
    event_mapping = yaml.safe_load(synth.mapping.read_text())
    arrears = {
        person[(c, r["ref"])]: (c, r)
        for c, path in synth.files.items()
        for r in csv.DictReader(path.read_text().splitlines())
        if r["event"] == "RENT_ARR"
    }
    objector = sorted(arrears)[0]
    mapping, pending = write_objections(
        tmp_path / "pending", synth.files, person, [objector], event_mapping
    )
    council, row = arrears[objector]
    assert list(pending) == [council]
    written = list(csv.DictReader(pending[council].read_text().splitlines()))
    assert len(written) == 1
    assert written[0]["agreement"] == OBJECTED_AGREEMENT and written[0]["choice"] == "O"
    for column in ("forename", "surname", "dob", "postcode", "nhs_no", "ni_number", "uprn"):
        assert written[0][column] == row[column]
    compiled = parse_mapping(yaml.safe_load(mapping.read_text()))
    assert compiled.record == "consent"
