"""The demo's ground-truth check: what the services should have heard, and whether they did."""

from __future__ import annotations

from datetime import date

import pytest

from consent import build_dev_federation
from fedbroker._demo import Delivery, TruthRow, compare, expected_disclosures

A, B = "E08000003", "E08000006"
MOVE, SPD = "gm-cross-boundary-move", "gm-single-person-discount-duplicate"


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    return build_dev_federation(tmp_path_factory.mktemp("fed"), councils=[A, B]).load()


def row(council, ref, person, event, day=1):
    return TruthRow(council, ref, person, event, date(2026, 10, day))


ROWS = (
    # P1 moves from A to B: the receiving council's services hear, the one left does not.
    row(A, "a1", "P1", "council-tax-account-closed", 1),
    row(B, "b1", "P1", "address-change", 4),
    # P2 claims a single-person discount in both: both councils' revenues hear.
    row(A, "a2", "P2", "single-person-discount-awarded", 2),
    row(B, "b2", "P2", "single-person-discount-awarded", 12),
    # P3 has two events in one council only: no agreement needs that.
    row(A, "a3", "P3", "council-tax-account-opened", 3),
    row(A, "a4", "P3", "council-tax-account-closed", 5),
)
TRUTH = {(r.council, r.source_ref): r.person_id for r in ROWS}
WATCHED = (f"{A}.revenues", f"{B}.revenues", "gmca.supporting-families")


def test_expected_disclosures_follow_the_agreements_routing(directory):
    expected = expected_disclosures(ROWS, directory, WATCHED)
    assert expected == {
        (MOVE, f"{B}.revenues", "P1"),
        (SPD, f"{A}.revenues", "P2"),
        (SPD, f"{B}.revenues", "P2"),
    }
    # An unwatched service is not expected to hear anything.
    assert expected_disclosures(ROWS, directory, [f"{A}.revenues"]) == {
        (SPD, f"{A}.revenues", "P2")
    }


def deliver(service, nid, agreement, *refs):
    return Delivery(service, nid, agreement, tuple(refs))


GOOD = [
    deliver(f"{B}.revenues", "n1", MOVE, (A, "a1"), (B, "b1")),
    deliver(f"{A}.revenues", "n2", SPD, (A, "a2"), (B, "b2")),
    deliver(f"{B}.revenues", "n3", SPD, (A, "a2"), (B, "b2")),
]
ON_TOPICS = {f"{B}.revenues": {"n1", "n3"}, f"{A}.revenues": {"n2"}}


def test_every_expected_notification_once_passes(directory):
    report = compare(
        expected_disclosures(ROWS, directory, WATCHED), GOOD, truth=TRUTH, published=ON_TOPICS
    )
    assert report.ok
    assert (report.expected, report.found, report.missed, report.wrongly_joined) == (3, 3, 0, 0)
    assert report.recall == 1.0


def test_a_notification_handed_over_twice_fails(directory):
    expected = expected_disclosures(ROWS, directory, WATCHED)
    report = compare(expected, [*GOOD, GOOD[0]], truth=TRUTH, published=ON_TOPICS)
    assert report.duplicates == 1
    assert not report.ok


def test_a_notification_on_the_topic_never_handed_over_fails(directory):
    expected = expected_disclosures(ROWS, directory, WATCHED)
    report = compare(expected, GOOD[1:], truth=TRUTH, published=ON_TOPICS)
    assert report.undelivered == 1
    assert report.missed == 1
    assert not report.ok


def test_a_disclosure_consent_forbids_fails_even_if_the_match_is_right(directory):
    expected = expected_disclosures(ROWS, directory, WATCHED)
    report = compare(expected, GOOD, truth=TRUTH, published=ON_TOPICS, forbidden={(SPD, "P2")})
    assert report.forbidden == 2
    assert not report.ok


def test_two_people_joined_as_one_is_counted_wrong_not_found(directory):
    expected = expected_disclosures(ROWS, directory, WATCHED)
    wrong = deliver(f"{B}.revenues", "n9", MOVE, (A, "a3"), (B, "b1"))
    unknown = deliver(f"{B}.revenues", "n8", MOVE, (A, "zz"), (B, "b1"))
    published = {**ON_TOPICS, f"{B}.revenues": {"n1", "n3", "n8", "n9"}}
    report = compare(expected, [*GOOD, wrong, unknown], truth=TRUTH, published=published)
    assert report.wrongly_joined == 2
    assert report.found == 3
    # A linkage error is reported, not a delivery failure.
    assert report.ok
