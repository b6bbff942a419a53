"""``fedbroker link`` at speed: the fast paths must give exactly the broker's answer.

``_link_match.match_all`` stands in for ``broker.run_batch`` on a whole extract
and rows are encoded in batches; both are held here to the slow, obviously
shared code on the connectors' synthetic councils and on hand-made corner
cases (no encoding, another parameter set, a repeated event id). Progress is
reported on stderr with counts only, and stays quiet when asked.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker import Matcher, Sighting, run_batch
from connectors import LinkageKey, generate_federation, load_mapping
from fedbroker._link_match import match_all
from fedbroker.cli import cli
from fedbroker.link import RowEncoder, link_files, read_rows
from schemas import EventType

LEFT, RIGHT = "E08000001", "E08000002"
KEY = LinkageKey(1, bytes(range(32)))


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return generate_federation(
        tmp_path_factory.mktemp("synth"), councils=(LEFT, RIGHT), people=600, seed=21
    )


def _encoded(synth) -> list[Sighting]:
    encoder = RowEncoder.of(load_mapping(synth.mapping), [KEY])
    out: list[Sighting] = []
    for side, council in (("left", LEFT), ("right", RIGHT)):
        rows = list(read_rows(synth.files[council], encoder.columns))
        out.extend(s for s in encoder.sightings(rows, side=side) if isinstance(s, Sighting))
    return out


def test_batch_encoded_rows_are_the_sightings_of_rows_encoded_one_by_one(synth):
    encoder = RowEncoder.of(load_mapping(synth.mapping), [KEY])
    rows = list(read_rows(synth.files[LEFT], encoder.columns))
    assert encoder.sightings(rows, side="left") == [encoder.sighting(r, side="left") for r in rows]


def test_match_all_gives_run_batch_s_matches_and_scores_in_the_same_order(synth):
    """Same pairs, owners, methods and Dice scores (so the EM fit is bit-identical)."""
    sightings = _encoded(synth)
    fast, slow = match_all(sightings), run_batch(sightings, Matcher(0.0))
    assert len(slow.matches) > 500 and len(slow.scores) > 500
    assert fast.matches == slow.matches
    assert fast.scores == slow.scores


def _sighting(event_id: str, *, tokens=(), blocking=(), fuzzy=None, encoding="clk-v2"):  # type: ignore[no-untyped-def]
    return Sighting(event_id=event_id, source_council="left", source_ref=event_id,
                    event_type=EventType.ADDRESS_CHANGE,
                    occurred_at=datetime(1970, 1, 1, tzinfo=UTC), key_epoch=1,
                    tokens=tuple(tokens), blocking=tuple(blocking), fuzzy=fuzzy,
                    encoding=encoding)  # fmt: skip


@pytest.mark.parametrize(
    "corner",
    ["no-encoding", "other-parameter-set", "empty-filters", "shared-exact", "repeated-id",
     "unequal-lengths"],
)  # fmt: skip
def test_match_all_equals_run_batch_on_corner_cases(corner):
    full, half, empty = b"\xff" * 128, b"\x0f" * 128, bytes(128)
    a = _sighting("a", tokens=["nhs:1"], blocking=["b:1", "b:2"], fuzzy=full)
    b = _sighting("b", blocking=["b:2", "b:1"], fuzzy=half)
    cases = {
        "no-encoding": [a, _sighting("c", blocking=["b:1"])],
        "other-parameter-set": [a, _sighting("c", blocking=["b:1"], fuzzy=full, encoding="v1")],
        "empty-filters": [
            _sighting("c", blocking=["b:1"], fuzzy=empty),
            _sighting("d", blocking=["b:1"], fuzzy=empty),
        ],  # fmt: skip
        "shared-exact": [a, b, _sighting("c", tokens=["nhs:1"], blocking=["b:1"], fuzzy=half)],
        "repeated-id": [a, b, a],
        "unequal-lengths": [a, _sighting("c", blocking=["b:1"], fuzzy=b"\xff" * 64)],
    }
    sightings = [a, b, *cases[corner]]
    slow = run_batch(sightings, Matcher(0.0))
    fast = match_all(sightings)
    assert (fast.matches, fast.scores) == (slow.matches, slow.scores)


def test_progress_is_counted_on_stderr_and_quiet_when_asked(synth, tmp_path):
    common = ["link", "--left", str(synth.files[LEFT]), "--right", str(synth.files[RIGHT]),
              "--mapping", str(synth.mapping), "--out", str(tmp_path / "pairs.csv")]  # fmt: skip
    shown = CliRunner().invoke(cli, [*common, "--progress"], catch_exceptions=False)
    assert shown.exit_code == 0
    assert "rows encoded" in shown.stderr
    assert "records matched" in shown.stderr
    records = int(shown.stdout.split(" records,")[0].split()[-1])
    assert f"{records:,} of {records:,} records matched" in shown.stderr
    assert "rows encoded" not in shown.stdout  # progress never mixes with the results
    quiet = CliRunner().invoke(cli, [*common, "--quiet"], catch_exceptions=False)
    assert quiet.exit_code == 0
    assert "rows encoded" not in quiet.stderr and "matched" not in quiet.stderr
    # Not a terminal (as under CliRunner, cron or a pipe): quiet by default.
    default = CliRunner().invoke(cli, common, catch_exceptions=False)
    assert "rows encoded" not in default.stderr


def test_progress_reports_counts_only(synth):
    reports: list[tuple[str, int, int | None]] = []
    result = link_files(
        synth.files[LEFT], synth.files[RIGHT], synth.mapping, linkage_keys=[KEY],
        progress=lambda stage, done, total: reports.append((stage, done, total)),
    )  # fmt: skip
    assert reports[-1] == ("match", result.records, result.records)
    encoded = [done for stage, done, _ in reports if stage == "encode"]
    assert encoded == sorted(encoded) and encoded[-1] == result.records + len(result.refused)
    assert all(isinstance(x, int | None) for r in reports for x in r[1:])
    json.dumps(reports)  # plain numbers and stage names, nothing else


def test_the_bench_module_prepares_two_extracts_and_their_truth(tmp_path: Path):
    from bench.link import prepare

    left, right, mapping, truth, pairs = prepare(tmp_path, 150, seed=3)
    assert mapping.exists()
    for path in (left, right):
        assert len(list(read_rows(path, frozenset({"ref"})))) == 150
    assert pairs > 50
    assert truth.read_text().startswith("left_ref,right_ref")


def test_encoding_in_worker_processes_gives_what_one_process_gives(synth, monkeypatch, tmp_path):
    """Small batches force several per file, so the pool really runs; same sightings,
    refusals and dropped fields, in the same order. A broken row is among them."""
    monkeypatch.setattr("fedbroker._link_encode.ENCODE_BATCH", 97)
    broken = tmp_path / "left.csv"
    lines = synth.files[LEFT].read_text(encoding="utf-8").splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    bad = ["x"] * len(header)
    bad[header.index("dob")] = "31/02/1980"  # dropped: the row links without it
    broken.write_text("".join(lines) + ",".join(bad) + ",an extra cell\n", encoding="utf-8")
    runs = [
        link_files(broken, synth.files[RIGHT], synth.mapping, linkage_keys=[KEY], workers=w)
        for w in (1, 2)
    ]
    assert runs[0] == runs[1]
    assert runs[0].refused and runs[0].records > 1000


def test_a_missing_column_is_a_clear_error_from_the_pool_too(synth, tmp_path, monkeypatch):
    from fedbroker._errors import CommandError

    monkeypatch.setattr("fedbroker._link_encode.ENCODE_BATCH", 50)
    lacking = tmp_path / "right.csv"
    lacking.write_text("ref,forename\n1,Ann\n", encoding="utf-8")
    with pytest.raises(CommandError, match="right file"):
        link_files(synth.files[LEFT], lacking, synth.mapping, linkage_keys=[KEY], workers=2)
