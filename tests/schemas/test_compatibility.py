"""`fedbroker schemas check`: the repo's schemas pass, an incompatible change fails by name."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from schemas import AVRO_DIR, EVENT_CATALOGUE, check_compatibility, sample_datum

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / ".venv/bin/fedbroker"), "schemas", "check", *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_repository_schemas_are_fully_compatible():
    result = _check()
    assert result.returncode == 0, result.stderr
    assert "fully compatible" in result.stdout


def test_incompatible_fixture_fails_naming_the_field():
    result = _check("--root", str(FIXTURES / "incompatible"))
    assert result.returncode == 1
    assert "Resident v1 -> v2: field 'postcode_district': added without a default" in result.stderr
    assert "Colour v1 -> v2: field 'symbols': enum symbols may only be appended" in result.stderr


def test_compatible_evolution_passes():
    assert check_compatibility((FIXTURES / "compatible").resolve()) == []


def test_type_narrowing_is_caught(tmp_path: Path):
    folder = tmp_path / "Thing"
    folder.mkdir()
    base = {"type": "record", "name": "Thing", "namespace": "t", "fields": []}
    folder.joinpath("v1.avsc").write_text(
        json.dumps({**base, "fields": [{"name": "n", "type": "long"}]})
    )
    folder.joinpath("v2.avsc").write_text(
        json.dumps({**base, "fields": [{"name": "n", "type": "int"}]})
    )
    problems = [str(p) for p in check_compatibility(tmp_path)]
    assert any("newer reading older fails" in p for p in problems)


def test_avro_enum_and_catalogue_agree():
    enum = json.loads((AVRO_DIR / "EventType" / "v1.avsc").read_text())
    assert enum["symbols"][: len(EVENT_CATALOGUE)] == [t.name for t in EVENT_CATALOGUE]
    assert enum["default"] in enum["symbols"]


def test_every_field_is_documented():
    for path in AVRO_DIR.glob("*/v*.avsc"):
        schema = json.loads(path.read_text())
        assert schema.get("doc"), path
        for field in schema.get("fields", []):
            assert field.get("doc"), f"{path}: {field['name']}"
    assert sample_datum({"type": "map", "values": "string"}) == {"k": "x"}
