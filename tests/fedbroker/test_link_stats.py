"""``fedbroker link --stats``: blocking recall against a truth file, the score histogram.

Written as a data team checking a run (the recall must count what blocking
really lost, the histogram must add up) and as a privacy officer reading the
output (no reference, token or value of any row may appear in it).
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker import Sighting
from connectors import LinkageKey, generate_federation
from fedbroker._errors import CommandError
from fedbroker._link_stats import blocking_recall
from fedbroker.cli import cli
from fedbroker.link import BlockingRecall, link_files, read_truth, score_histogram
from schemas import EventType

LEFT, RIGHT = "E08000001", "E08000002"
KEY = LinkageKey(1, bytes(range(32)))


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return generate_federation(
        tmp_path_factory.mktemp("synth"), councils=(LEFT, RIGHT), people=400, seed=5
    )


def _truth_file(synth, path: Path) -> tuple[Path, set[tuple[str, str]]]:
    with synth.truth.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    left = [(r["ref"], r["person_id"]) for r in rows if r["council"] == LEFT]
    right = [(r["ref"], r["person_id"]) for r in rows if r["council"] == RIGHT]
    pairs = {(a, b) for a, pa in left for b, pb in right if pa == pb}
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("left_ref", "right_ref"))
        writer.writerows(sorted(pairs))
    return path, pairs


def _sighting(side: str, ref: str, tokens=(), blocking=()):  # type: ignore[no-untyped-def]
    return Sighting(event_id=f"{side}:{ref}", source_council=side, source_ref=ref,
                    event_type=EventType.ADDRESS_CHANGE,
                    occurred_at=datetime(1970, 1, 1, tzinfo=UTC), key_epoch=1,
                    tokens=tuple(tokens), blocking=tuple(blocking))  # fmt: skip


def test_blocking_recall_counts_pairs_sharing_any_token_and_names_the_unread():
    sightings = [
        _sighting("left", "l1", tokens=["nhs:1"]),
        _sighting("right", "r1", tokens=["nhs:1"]),  # exact: compared
        _sighting("left", "l2", blocking=["b:2"]),
        _sighting("right", "r2", blocking=["b:2"]),  # blocking: compared
        _sighting("left", "l3", blocking=["b:3"]),
        _sighting("right", "r3", blocking=["b:9"]),  # shares nothing: lost to blocking
        _sighting("left", "l4", blocking=["b:4"]),
        _sighting("right", "r4", blocking=["b:5"]),  # a second row of r4 shares b:4
        _sighting("right", "r4", blocking=["b:4"]),
    ]
    truth = {("l1", "r1"), ("l2", "r2"), ("l3", "r3"), ("l4", "r4"), ("l5", "r1"), ("r1", "l1")}
    recall = blocking_recall(sightings, truth, left="left", right="right")
    assert recall == BlockingRecall(pairs=6, blocked=3, unread=2)
    assert recall.recall == 0.5
    assert "3 of 6 true pairs" in recall.describe()
    assert BlockingRecall(0, 0, 0).recall == 0.0


def test_the_histogram_adds_up_marks_the_threshold_and_bounds_its_bars():
    scores = [0.0, 0.02, 0.5, 0.51, 0.52, 0.97, 1.0, 1.0]
    lines = score_histogram(scores, 0.61, bins=10)
    assert len(lines) == 10
    counts = [int(line.split()[1]) for line in lines]
    assert counts == [2, 0, 0, 0, 0, 3, 0, 0, 0, 3]
    assert sum(counts) == len(scores)
    assert [i for i, line in enumerate(lines) if "<- threshold" in line] == [6]
    assert lines[0].startswith("0.00-0.10")
    assert all(line.count("#") <= 50 for line in lines)
    assert lines[5].count("#") == 50 and lines[9].count("#") == 50
    assert score_histogram([0.3] + [0.9] * 10_000, 1.0)[6].count("#") == 1  # never hidden
    assert "<- threshold" in score_histogram([], 1.0)[-1]


def test_read_truth_takes_link_s_own_pairs_file_or_two_bare_columns(tmp_path):
    headed = tmp_path / "headed.csv"
    headed.write_text("left_ref,right_ref,score,method\na,b,1.0000,exact\n c , d ,0.9,fuzzy\n")
    assert read_truth(headed) == {("a", "b"), ("c", "d")}
    bare = tmp_path / "bare.csv"
    bare.write_text("a,b\n")
    assert read_truth(bare) == {("a", "b")}


@pytest.mark.parametrize("content", ["left_ref,right_ref\nonly-one\n", "a,\n", b"\xff\xfe,x\n"])
def test_a_truth_file_that_names_no_pair_is_a_clear_error_without_its_cells(tmp_path, content):
    path = tmp_path / "truth.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(CommandError) as raised:
        read_truth(path)
    assert "only-one" not in str(raised.value)
    assert "--truth" in str(raised.value)


def test_link_measures_recall_against_the_truth_and_keeps_every_blocked_score(synth, tmp_path):
    truth_path, pairs = _truth_file(synth, tmp_path / "truth.csv")
    result = link_files(
        synth.files[LEFT], synth.files[RIGHT], synth.mapping, linkage_keys=[KEY],
        truth=read_truth(truth_path),
    )  # fmt: skip
    assert result.recall is not None
    assert result.recall.pairs == len(pairs)
    # Every pair found shares a token, so recall can be no lower than the found share.
    found = {(p.left_ref, p.right_ref) for p in result.pairs}
    assert result.recall.blocked >= len(found & pairs)
    assert 0.95 <= result.recall.recall <= 1.0
    fuzzy = [p.score for p in result.pairs if p.method == "fuzzy"]
    assert fuzzy and set(fuzzy) <= set(result.scores)
    no_truth = link_files(synth.files[LEFT], synth.files[RIGHT], synth.mapping,
                          linkage_keys=[KEY])  # fmt: skip
    assert no_truth.recall is None


def test_stats_command_prints_recall_and_histogram_and_nothing_about_anyone(synth, tmp_path):
    truth_path, _ = _truth_file(synth, tmp_path / "truth.csv")
    out = tmp_path / "pairs.csv"
    result = CliRunner().invoke(
        cli,
        ["link", "--left", str(synth.files[LEFT]), "--right", str(synth.files[RIGHT]),
         "--mapping", str(synth.mapping), "--out", str(out), "--stats", "--truth",
         str(truth_path), "--quiet"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "blocking recall" in result.stdout
    assert "blocked pairs scored" in result.stdout
    assert "<- threshold" in result.stdout
    histogram = [line for line in result.stdout.splitlines() if line.startswith("  0.")]
    assert len(histogram) == 20
    # Not one cell of either extract (references, names, dates, postcodes, numbers).
    for council in (LEFT, RIGHT):
        with synth.files[council].open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                for column in ("ref", "forename", "surname", "dob", "postcode", "nhs_no"):
                    value = row[column]
                    if value and len(value) > 3:
                        assert value not in result.output, column


def test_truth_without_stats_is_refused(synth, tmp_path):
    truth_path, _ = _truth_file(synth, tmp_path / "truth.csv")
    result = CliRunner().invoke(
        cli,
        ["link", "--left", str(synth.files[LEFT]), "--right", str(synth.files[RIGHT]),
         "--mapping", str(synth.mapping), "--out", str(tmp_path / "p.csv"), "--truth",
         str(truth_path)],
    )  # fmt: skip
    assert result.exit_code != 0
    assert isinstance(result.exception, CommandError)
    assert "--stats" in str(result.exception)
