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


def _thing_versions(root: Path, *versions: dict[str, object]) -> None:
    """Write ``Thing/v1.avsc``, ``v2.avsc``... each with the given fields and extra keys."""
    folder = root / "Thing"
    folder.mkdir()
    for number, extra in enumerate(versions, 1):
        schema = {"type": "record", "name": "Thing", "namespace": "t", **extra}
        folder.joinpath(f"v{number}.avsc").write_text(json.dumps(schema))


_LONG = [{"name": "n", "type": "long", "doc": "d"}]
_TEXT = [{"name": "s", "type": "string", "doc": "d"}]  # no default: breaks both ways


def test_the_recorded_major_break_opens_a_new_line(tmp_path: Path):
    """0.2.0 may break the wire once: its v3 is not checked against v1/v2."""
    _thing_versions(
        tmp_path,
        {"fields": _LONG},
        {"fields": _LONG},
        {"fields": _TEXT, "fedbroker.major": "0.2.0"},
    )
    assert check_compatibility(tmp_path) == []


def test_the_same_break_without_the_mark_is_refused(tmp_path: Path):
    _thing_versions(tmp_path, {"fields": _LONG}, {"fields": _TEXT})
    problems = [str(p) for p in check_compatibility(tmp_path)]
    assert any("Thing v1 -> v2: field 's': added without a default" in p for p in problems)


def test_a_break_that_is_not_recorded_is_refused(tmp_path: Path):
    """A careless developer cannot silence the check by marking any version a break."""
    _thing_versions(tmp_path, {"fields": _LONG}, {"fields": _TEXT, "fedbroker.major": "0.3.0"})
    problems = [str(p) for p in check_compatibility(tmp_path)]
    assert problems == [
        "Thing v2 -> v2: field '(record)': opens major line '0.3.0', which is not a recorded break"
    ]


def test_compatibility_is_still_enforced_within_the_new_line(tmp_path: Path):
    _thing_versions(
        tmp_path,
        {"fields": _LONG},
        {"fields": _TEXT, "fedbroker.major": "0.2.0"},
        {"fields": _LONG},
    )
    problems = [str(p) for p in check_compatibility(tmp_path)]
    assert any(p.startswith("Thing v2 -> v3:") for p in problems)
    assert not any(p.startswith("Thing v1 -> ") for p in problems)


def test_the_repository_break_is_the_one_in_the_changelog():
    from schemas import RECORDED_BREAKS, load_versions

    marked = {v.opens_major for vs in load_versions().values() for v in vs if v.opens_major}
    assert marked == set(RECORDED_BREAKS) == {"0.2.0"}
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    for release in RECORDED_BREAKS:
        assert f"## {release}" in changelog
    broken = {n for n, vs in load_versions().items() if any(v.opens_major for v in vs)}
    assert broken == {"CitizenEvent", "ConsentRecord", "MatchNotification"}
