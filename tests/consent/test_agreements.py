"""Agreements: the examples validate; each kind of mistake is refused, naming its line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from consent import (
    AgreementInvalid,
    ConsentModel,
    Routing,
    example_agreement_paths,
    format_duration,
    load_agreement,
    parse_agreement,
    parse_duration,
)
from schemas import EVENT_CATALOGUE, EventType

GM = [f"E080000{n:02d}" for n in range(1, 11)]
SERVICES = [f"{g}.{s}" for g in GM for s in ("revenues", "electoral-registration")]
SERVICES.append("gmca.supporting-families")
KNOWN = {"councils": ["E08000003", "E08000006"], "services": ["E08000009.revenues"]}


def _problems(text: str, **known) -> tuple[str, ...]:
    with pytest.raises(AgreementInvalid) as caught:
        parse_agreement(text, source="draft.yaml", **known)
    assert caught.value.reason == "agreement-invalid"
    return caught.value.problems


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_the_three_examples_validate_against_the_gm_directory():
    paths = example_agreement_paths()
    assert len(paths) == 3
    loaded = {p.stem: load_agreement(p, councils=GM, services=SERVICES) for p in paths}
    move = loaded["gm-cross-boundary-move"]
    assert move.routing is Routing.DESTINATION_COUNCIL
    assert move.consent_model is ConsentModel.NOT_REQUIRED
    assert "E08000009.electoral-registration" in move.recipients
    spd = loaded["gm-single-person-discount-duplicate"]
    assert spd.match.distinct_sources_min == 2
    assert "Local Audit and Accountability Act 2014" in spd.lawful_basis.statutory_power
    mdis = loaded["gm-multiple-disadvantage"]
    assert mdis.consent_model is ConsentModel.OBJECTION
    assert "Digital Economy Act 2017 Part 5" in mdis.lawful_basis.statutory_power
    assert mdis.lawful_basis.article_9 is not None  # social care is special category
    for agreement in loaded.values():
        assert agreement.in_force(datetime(2027, 1, 1, tzinfo=UTC))
        for event_type, fields in agreement.disclosures.items():
            assert fields <= EVENT_CATALOGUE[event_type].payload_fields


def test_the_base_agreement_compiles(agreement_yaml):
    agreement = parse_agreement(agreement_yaml(), **KNOWN)
    assert agreement.match.window == timedelta(days=30)
    assert agreement.allowed_fields("address-change") == {"postcode", "uprn"}
    assert agreement.allowed_fields("no-such-type") == frozenset()
    # valid_until is a date: in force through the whole of that day
    assert agreement.in_force(datetime(2027, 12, 31, 23, 59, tzinfo=UTC))
    assert not agreement.in_force(datetime(2028, 1, 1, tzinfo=UTC))
    assert not agreement.in_force(datetime(2025, 12, 31, tzinfo=UTC))


def test_unknown_event_type_is_named_with_its_line(agreement_yaml):
    text = agreement_yaml(
        match__event_types=["address-change", "council-tax-account-closed", "pet-licence"]
    )
    problems = _problems(text)
    line = _line_of(text, "pet-licence")
    assert any(f"line {line}:" in p and "unknown event type 'pet-licence'" in p for p in problems)


def test_unknown_field_is_named_with_its_line(agreement_yaml):
    text = agreement_yaml(disclose={"address-change": ["postcode", "nhs_number"]})
    problems = _problems(text)
    line = _line_of(text, "nhs_number")
    assert any(
        f"line {line}:" in p and "unknown field 'nhs_number' for event type 'address-change'" in p
        for p in problems
    )


def test_controller_and_recipient_not_in_the_directory(agreement_yaml):
    text = agreement_yaml(
        controllers=["E08000003", "E08000099"], recipients=["E08000009.revenues", "mi5"]
    )
    problems = _problems(text, **KNOWN)
    assert any(
        f"line {_line_of(text, 'E08000099')}:" in p
        and "controller 'E08000099' is not a council in the directory" in p
        for p in problems
    )
    assert any(
        f"line {_line_of(text, '- mi5')}:" in p
        and "recipient 'mi5' is not a service in the directory" in p
        for p in problems
    )


def test_special_category_without_article_9(agreement_yaml):
    text = agreement_yaml(
        match__event_types=["address-change", "adult-social-care-assessment"],
        disclose={"adult-social-care-assessment": ["case_reference"]},
    )
    problems = _problems(text)
    assert any(
        f"line {_line_of(text, 'article_6')}:" in p
        and "adult-social-care-assessment need an article 9 condition" in p
        for p in problems
    )
    # with the condition it is accepted
    fixed = agreement_yaml(
        match__event_types=["address-change", "adult-social-care-assessment"],
        disclose={"adult-social-care-assessment": ["case_reference"]},
        lawful_basis={
            "article_6": "6(1)(e) public task",
            "article_9": "9(2)(g) substantial public interest, DPA 2018 Sch 1 para 6",
            "statutory_power": "Care Act 2014",
        },
    )
    assert parse_agreement(fixed).lawful_basis.article_9 is not None


@pytest.mark.parametrize("bad", ["30 days", "0d", "-5d", "P", "1y", "soon"])
def test_bad_durations(agreement_yaml, bad):
    text = agreement_yaml(match__window=bad, retention="forever")
    problems = _problems(text)
    assert any(
        f"line {_line_of(text, 'window:')}:" in p and "bad duration for 'window'" in p
        for p in problems
    )
    assert any(
        f"line {_line_of(text, 'retention:')}:" in p and "bad duration for 'retention'" in p
        for p in problems
    )


def test_missing_lawful_basis(agreement_yaml):
    problems = _problems(agreement_yaml(lawful_basis=None))
    assert any("line 1:" in p and "missing lawful basis" in p for p in problems)
    text = agreement_yaml(lawful_basis={"notes": "we just want it"})
    problems = _problems(text)
    assert any("missing lawful basis: 'article_6'" in p for p in problems)
    assert any("missing lawful basis: 'statutory_power'" in p for p in problems)
    text = agreement_yaml(lawful_basis={"article_6": "because", "statutory_power": "x"})
    assert any("must start 6(1)(a)..(f)" in p for p in _problems(text))


def test_every_problem_is_reported_at_once(agreement_yaml):
    text = agreement_yaml(
        lawful_basis=None,
        retention="a while",
        consent_model="maybe",
        routing="everywhere",
        valid_from="2026-13-01",
        extra_field=1,
        match__event_types=["nope"],
        match__count_min=0,
    )
    problems = _problems(text, **KNOWN)
    joined = "\n".join(problems)
    for expected in (
        "missing lawful basis",
        "bad duration for 'retention'",
        "'consent_model' must be one of",
        "'routing' must be one of",
        "'valid_from' must be a date",
        "unknown field 'extra_field'",
        "unknown event type 'nope'",
        "'count_min' must be a whole number",
    ):
        assert expected in joined
    with pytest.raises(AgreementInvalid) as caught:
        parse_agreement(text, source="draft.yaml")
    assert str(caught.value).startswith(f"{len(caught.value.problems)} problem(s)")
    assert "draft.yaml:line " in str(caught.value)


def test_structural_mistakes(agreement_yaml):
    assert _problems("- just\n- a list\n")
    assert _problems("id: [unclosed\n")
    assert any(
        "must be after 'valid_from'" in p
        for p in _problems(agreement_yaml(valid_until="2025-01-01"))
    )
    assert any(
        "needs a timezone" in p for p in _problems(agreement_yaml(valid_from="2026-01-01T00:00:00"))
    )
    assert any(
        "not in match.event_types" in p
        for p in _problems(agreement_yaml(disclose={"rent-arrears": ["tenancy_reference"]}))
    )
    assert any("cannot be below" in p for p in _problems(agreement_yaml(match__count_min=1)))
    assert any("missing required field 'match'" in p for p in _problems(agreement_yaml(match=None)))
    assert any("'id' must be lower-case" in p for p in _problems(agreement_yaml(id="Bad Id")))


def test_load_agreement_missing_file(tmp_path):
    with pytest.raises(AgreementInvalid):
        load_agreement(tmp_path / "none.yaml")


def test_durations_round_trip():
    assert parse_duration("P1W2DT3H") == timedelta(days=9, hours=3)
    assert parse_duration("72h") == timedelta(days=3)
    for text in ("2w", "3d", "5h", "7m", "61s"):
        assert format_duration(parse_duration(text)) == text
    assert EventType("address-change") in EVENT_CATALOGUE


RAW = """\
id: raw-test
id: raw-test-again
title: [not, text]
purpose: "  "
lawful_basis:
  article_6: 6(1)(e) public task
  article_9: nine
  statutory_power: An Act
controllers: E08000003
recipients: []
disclose:
  address-change: postcode
  not-a-type: [x]
match:
  event_types: [address-change, {nested: 1}]
  distinct_sources_min: 1
  count_min: 1
  window: {days: 3}
consent_model: required
"""


def test_malformed_structure_is_reported_per_line():
    problems = "\n".join(_problems(RAW))
    for expected in (
        "line 2: agreement: key 'id' is given twice",
        "line 3: 'title' must be a non-empty text value",
        "line 4: 'purpose' must be a non-empty text value",
        "line 7: 'article_9' must start 9(2)(a)..(j)",
        "line 9: 'controllers' must be a list",
        "line 10: 'recipients' must not be empty",
        "line 12: disclose.address-change must be a list of field names",
        "line 13: unknown event type 'not-a-type'",
        "line 15: 'event_types' items must be non-empty text values",
        "line 18: bad duration for 'window': must be text like 30d",
        "missing required field 'valid_from'",
        "missing required field 'retention'",
    ):
        assert expected in problems, expected
    problems = "\n".join(_problems("id: x-y\nmatch: {event_types: [address-change]}\n"))
    assert "match: missing required field 'window'" in problems
    assert "missing required field 'disclose'" in problems
    assert "line 1: agreement must be a mapping" in "\n".join(_problems("just text\n"))
    assert "agreement must be a mapping" in "\n".join(_problems(""))
    assert "empty document" in "\n".join(_problems("{}\n"))
