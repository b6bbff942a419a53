"""``fedbroker link`` attacked with hostile and careless input files (attack round 3).

Each test failed on the code before its fix: a malformed file must cost its
rows or be refused with a typed reason, never end in an internal error, never
be linked on an arbitrary one of two values, and never be overwritten.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from connectors import MAX_LINE_CHARS, ConfigInvalid, load_linkage_keys
from fedbroker._errors import CommandError
from fedbroker.cli import cli
from fedbroker.link import link_files, read_truth
from tests.fedbroker.test_link import HOUSING_MAPPING

_HEADER = "ref,forename,surname,dob,postcode\n"
_ROWS = "R1,Ann,Lee,1970-01-01,M1 1AE\nR2,Bob,Ray,1971-02-02,M1 1AE\n"


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(yaml.safe_dump(HOUSING_MAPPING))
    left, right = tmp_path / "left.csv", tmp_path / "right.csv"
    left.write_text(_HEADER + _ROWS)
    right.write_text(_HEADER + _ROWS)
    return left, right, mapping


def test_a_header_cell_over_the_csv_size_limit_is_a_typed_refusal(files, tmp_path):
    _, right, mapping = files
    left = tmp_path / "huge.csv"
    left.write_text(_HEADER.strip() + "," + "x" * 200_000 + "\n" + _ROWS)
    with pytest.raises(CommandError, match=r"left file huge\.csv: header unparseable"):
        link_files(left, right, mapping)


def test_a_mapped_column_named_twice_refuses_the_file_rather_than_pick_one(files, tmp_path):
    _, right, mapping = files
    left = tmp_path / "twice.csv"
    left.write_text(_HEADER.strip() + ",surname\nR1,Ann,Lee,1970-01-01,M1 1AE,Zed\n")
    with pytest.raises(CommandError, match=r"twice\.csv: columns named twice \['surname'\]"):
        link_files(left, right, mapping)
    # An unmapped column named twice changes nothing linkage reads.
    left.write_text(_HEADER.strip() + ",note,note\nR1,Ann,Lee,1970-01-01,M1 1AE,a,b\n")
    assert link_files(left, right, mapping, threshold=0.9).records == 3


def test_a_jsonl_value_holding_a_unicode_line_separator_is_one_row(files, tmp_path):
    _, right, mapping = files
    left = tmp_path / "l.jsonl"
    record = {"ref": "R1", "forename": "Ann\u2028", "surname": "Lee\x85",
              "dob": "1970-01-01", "postcode": "M1 1AE"}  # fmt: skip
    left.write_text(json.dumps(record, ensure_ascii=False) + "\r\n", encoding="utf-8")
    result = link_files(left, right, mapping, threshold=0.5)
    assert result.refused == ()
    assert result.records == 3


def test_a_truth_file_saved_with_a_bom_does_not_count_its_header_as_a_pair(tmp_path):
    truth = tmp_path / "truth.csv"
    truth.write_text("\ufeffleft_ref,right_ref\nR1,R1\n", encoding="utf-8")
    assert read_truth(truth) == frozenset({("R1", "R1")})


def test_a_key_file_that_is_not_utf8_is_a_config_error_not_a_crash(tmp_path):
    keys = tmp_path / "keys.json"
    keys.write_bytes(b'{"1": "\xff\xfe' + b"a" * 62 + b'"}')
    keys.chmod(0o600)
    with pytest.raises(ConfigInvalid, match="expected a JSON map"):
        load_linkage_keys(keys)


@pytest.mark.parametrize(
    ("option", "target"),
    [*((o, t) for o in ("--out", "--review") for t in ("left", "right", "mapping", "keys",
                                                       "truth")), ("--review", "out")],
)  # fmt: skip
def test_an_output_never_overwrites_an_input_or_the_other_output(files, tmp_path, option, target):
    left, right, mapping = files
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"1": "ab" * 32}))
    keys.chmod(0o600)
    truth = tmp_path / "truth.csv"
    truth.write_text("left_ref,right_ref\nR1,R1\n")
    out, review = tmp_path / "out.csv", tmp_path / "review.csv"
    paths = {"left": left, "right": right, "mapping": mapping, "keys": keys, "truth": truth,
             "out": out}  # fmt: skip
    victim = paths[target]
    alias = tmp_path / "alias"
    if victim.exists():
        alias.symlink_to(victim)  # a path trick: the same file under another name
        victim_path = alias
    else:
        victim_path = tmp_path / "sub" / ".." / victim.name
        (tmp_path / "sub").mkdir()
    before = {name: p.read_bytes() for name, p in paths.items() if p.exists()}
    chosen = {"--out": out, "--review": review, option: victim_path}
    result = CliRunner().invoke(cli, [
        "link", "--left", str(left), "--right", str(right), "--mapping", str(mapping),
        "--linkage-keys", str(keys), "--stats", "--truth", str(truth),
        "--out", str(chosen["--out"]), "--review", str(chosen["--review"]),
    ])  # fmt: skip
    assert result.exit_code == 1
    assert isinstance(result.exception, CommandError)
    assert "is the same file as" in str(result.exception)
    assert {name: p.read_bytes() for name, p in paths.items() if p.exists()} == before


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_a_line_over_the_cap_costs_its_record_and_the_next_rows_still_link(files, tmp_path, suffix):
    # A lost line end or a file of commas: a 1 GB line of cells would take some
    # 25 GB as the csv module's strings; over MAX_LINE_CHARS it is never parsed.
    _, right, mapping = files
    left = tmp_path / f"long.{suffix}"
    wide = "," * (MAX_LINE_CHARS + 10)
    if suffix == "csv":
        left.write_text(f"{_HEADER}R0,Ann,Lee,1970-01-01,M1 1AE{wide}\r\n{_ROWS}")
    else:
        names = _HEADER.strip().split(",")
        cells = [["R0", "Ann", "Lee", "1970-01-01", "M1 1AE"]] + [
            r.split(",") for r in _ROWS.splitlines()
        ]
        records = [dict(zip(names, c, strict=True)) for c in cells]
        records[0]["note"] = wide
        left.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = link_files(left, right, mapping, threshold=0.9)
    assert [(r.row, r.reason, r.code) for r in result.refused] == [
        (1, "invalid-row", "line-too-long")
    ]
    assert sorted((p.left_ref, p.right_ref) for p in result.pairs) == [("R1", "R1"), ("R2", "R2")]
