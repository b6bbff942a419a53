"""Synthetic councils: realistic UK people, their events in several boroughs, and errors.

Tests, the demo and the benchmarks need data that behaves like councils' extracts
without being anyone's: Faker's ``en_GB`` people with valid NHS and National
Insurance numbers, spread over councils with moves, shared households,
single-person discounts claimed twice and households with several disadvantages,
and copies corrupted as clerks and systems corrupt them. The ground truth (which
person each row is) is written beside the data so linkage can be scored.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path

import yaml
from faker import Faker

from connectors._errors import InvalidIdentifier
from connectors._normalise import normalise_postcode

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_ERROR_RATE",
    "NICKNAMES",
    "SyntheticFederation",
    "generate_federation",
    "nhs_number",
    "ni_number",
]

GM_CODES = tuple(f"E0800000{i}" for i in range(1, 10)) + ("E08000010",)
DEFAULT_ERROR_RATE = 0.3
SHARED_HOUSEHOLD_RATE = 0.15
DOB_FORMAT = "%d/%m/%Y"
CSV_COLUMNS = (
    "ref", "forename", "surname", "dob", "postcode", "address_1", "uprn", "nhs_no",
    "ni_number", "event", "event_date",
)  # fmt: skip
NICKNAMES = {
    "Robert": "Bob", "William": "Bill", "Elizabeth": "Liz", "Margaret": "Maggie",
    "James": "Jim", "Thomas": "Tom", "Katherine": "Kate", "Richard": "Dick",
    "Jennifer": "Jen", "Michael": "Mike", "Christopher": "Chris", "Rebecca": "Becky",
    "Daniel": "Dan", "Samuel": "Sam", "Alexander": "Alex", "Victoria": "Vicky",
}  # fmt: skip
#: The default first event date is this many days ago; events span 73 days from it.
RECENT_DAYS = 75

_EVENT_CODES = {
    "address-change": "MOVE", "council-tax-account-opened": "CT_OPEN",
    "council-tax-account-closed": "CT_CLOSE", "single-person-discount-awarded": "SPD",
    "council-tax-arrears": "CT_ARR", "rent-arrears": "RENT_ARR",
    "persistent-absence": "PA", "homelessness-presentation": "HOMELESS",
    "benefit-claim": "CTR",
}  # fmt: skip


def nhs_number(rng: random.Random) -> str:
    """A random NHS number with a valid modulus-11 check digit."""
    while True:
        digits = [rng.randint(0, 9) for _ in range(9)]
        check = 11 - sum(d * (10 - i) for i, d in enumerate(digits)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            return "".join(map(str, digits)) + str(check)


def ni_number(rng: random.Random) -> str:
    """A random National Insurance number in a valid format."""
    first = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    if first + second in {"GB", "NK", "TN", "BG", "KN", "NT", "ZZ"}:
        second = "A"
    return f"{first}{second}{rng.randint(0, 999999):06d}{rng.choice('ABCD')}"


@dataclass(frozen=True, slots=True)
class _Person:
    person_id: str
    forename: str
    surname: str
    dob: date
    postcode: str
    address_1: str
    uprn: str
    nhs_no: str
    ni_number: str
    council: str


@dataclass(frozen=True, slots=True)
class SyntheticFederation:
    """Where ``generate_federation`` wrote each council's file and mapping, and the truth."""

    folder: Path
    councils: tuple[str, ...]
    files: dict[str, Path]
    mapping: Path
    truth: Path
    rows: int


def _postcode(fake: Faker) -> str:
    while True:
        try:
            return normalise_postcode(fake.postcode())
        except InvalidIdentifier:
            continue


def _typo(rng: random.Random, text: str) -> str:
    if len(text) < 3:
        return text
    i = rng.randrange(1, len(text) - 1)
    kind = rng.choice(("swap", "drop", "double", "replace"))
    if kind == "swap":
        return text[: i - 1] + text[i] + text[i - 1] + text[i + 1 :]
    if kind == "drop":
        return text[:i] + text[i + 1 :]
    if kind == "double":
        return text[:i] + text[i] + text[i:]
    return text[:i] + rng.choice("aeiourstn") + text[i + 1 :]


def _corrupt(rng: random.Random, fake: Faker, row: dict[str, str]) -> dict[str, str]:
    """One realistic error, as a clerk or a migrated system would make it."""
    row = dict(row)
    kind = rng.choice(("typo", "nickname", "swap", "missing", "transpose", "moved", "typo"))
    if kind == "typo":
        field = rng.choice(("forename", "surname"))
        row[field] = _typo(rng, row[field])
    elif kind == "nickname" and row["forename"] in NICKNAMES:
        row["forename"] = NICKNAMES[row["forename"]]
    elif kind == "swap":
        row["forename"], row["surname"] = row["surname"], row["forename"]
    elif kind == "missing":
        row[rng.choice(("postcode", "nhs_no", "ni_number", "uprn"))] = ""
    elif kind == "transpose":
        dob = datetime.strptime(row["dob"], DOB_FORMAT).date()
        if dob.day <= 12 and dob.day != dob.month:
            row["dob"] = date(dob.year, dob.day, dob.month).strftime(DOB_FORMAT)
    elif kind == "moved":
        row["postcode"], row["address_1"] = _postcode(fake), fake.street_address()
    return row


def _row(person: _Person, event: str, when: date, ref: str, rng: random.Random) -> dict[str, str]:
    return {
        "ref": ref,
        "forename": person.forename,
        "surname": person.surname,
        "dob": person.dob.strftime(DOB_FORMAT),
        "postcode": person.postcode,
        "address_1": person.address_1,
        "uprn": person.uprn,
        "nhs_no": person.nhs_no if rng.random() < 0.4 else "",
        "ni_number": person.ni_number if rng.random() < 0.5 else "",
        "event": _EVENT_CODES[event],
        "event_date": when.isoformat(),
        "person_id": person.person_id,
    }


def _mapping_document() -> dict[str, object]:
    return {
        "system": "synthetic",
        "identity": {
            "given_name": "forename",
            "family_name": "surname",
            "date_of_birth": "dob",
            "postcode": "postcode",
            "uprn": "uprn",
            "nhs_number": "nhs_no",
            "nino": "ni_number",
            "extra": {"street": "address_1"},
        },
        "date_of_birth_format": DOB_FORMAT,
        "reference": "ref",
        "event_type": {"column": "event", "values": {v: k for k, v in _EVENT_CODES.items()}},
        "occurred_at": {"column": "event_date", "format": "%Y-%m-%d"},
    }


def generate_federation(
    folder: Path,
    *,
    councils: int | Sequence[str] = 3,
    people: int = 200,
    seed: int = 7,
    error_rate: float = DEFAULT_ERROR_RATE,
    start: date | None = None,
) -> SyntheticFederation:
    """Write one CSV per council (``<gss>.csv``), a mapping, and ``truth.csv``.

    About one person in seven shares a household (address, UPRN) with the one
    before. Each person lives in one council and has one or two ordinary events there;
    some move to another council (address change there, account closed at home),
    some claim a single-person discount in two councils, some households show
    rent arrears, council-tax arrears and persistent absence across councils.
    A share ``error_rate`` of the rows in the *other* council carry one error.
    """
    if start is None:  # recent enough that every agreement's retention still holds them
        start = date.today() - timedelta(days=RECENT_DAYS)
    codes = tuple(councils) if not isinstance(councils, int) else GM_CODES[:councils]
    rng = random.Random(seed)
    fake = Faker("en_GB")
    fake.seed_instance(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict[str, str]]] = {c: [] for c in codes}
    counter = 0

    def emit(person: _Person, council: str, event: str, when: date, corrupt: bool) -> None:
        nonlocal counter
        counter += 1
        row = _row(person, event, when, f"{council[-2:]}-{counter:07d}", rng)
        if corrupt and rng.random() < error_rate:
            row = _corrupt(rng, fake, row)
        rows[council].append(row)

    previous: _Person | None = None
    for i in range(people):
        forename = rng.choice(list(NICKNAMES)) if rng.random() < 0.2 else fake.first_name()
        person = _Person(
            person_id=f"P{i:06d}",
            forename=forename,
            surname=fake.last_name(),
            dob=fake.date_of_birth(minimum_age=18, maximum_age=90),
            postcode=_postcode(fake),
            address_1=fake.street_address(),
            uprn=str(rng.randint(10**8, 10**11)),
            nhs_no=nhs_number(rng),
            ni_number=ni_number(rng),
            council=rng.choice(codes),
        )
        if previous is not None and rng.random() < SHARED_HOUSEHOLD_RATE:
            # Shares a home with the previous person: same address, UPRN and council.
            person = replace(
                person, postcode=previous.postcode, address_1=previous.address_1,
                uprn=previous.uprn, council=previous.council,
            )  # fmt: skip
        previous = person
        when = start + timedelta(days=rng.randint(0, 60))
        others = [c for c in codes if c != person.council] or [person.council]
        emit(
            person,
            person.council,
            rng.choice(("council-tax-account-opened", "benefit-claim")),
            when,
            False,
        )
        roll = rng.random()
        if roll < 0.25:
            destination = rng.choice(others)
            emit(person, person.council, "council-tax-account-closed", when, False)
            emit(person, destination, "address-change", when + timedelta(days=3), True)
        elif roll < 0.35:
            emit(person, person.council, "single-person-discount-awarded", when, False)
            emit(
                person,
                rng.choice(others),
                "single-person-discount-awarded",
                when + timedelta(days=10),
                True,
            )
        elif roll < 0.45:
            emit(person, person.council, "rent-arrears", when, False)
            emit(person, rng.choice(others), "council-tax-arrears", when + timedelta(days=5), True)
            emit(person, rng.choice(others), "persistent-absence", when + timedelta(days=9), True)

    files = {}
    for council, council_rows in rows.items():
        path = folder / f"{council}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(council_rows)
        files[council] = path
    mapping = folder / "mapping.yaml"
    mapping.write_text(yaml.safe_dump(_mapping_document(), sort_keys=False))
    truth = folder / "truth.csv"
    with truth.open("w", newline="", encoding="utf-8") as handle:
        truth_writer = csv.writer(handle)
        truth_writer.writerow(("council", "ref", "person_id"))
        for council, council_rows in rows.items():
            truth_writer.writerows((council, r["ref"], r["person_id"]) for r in council_rows)
    return SyntheticFederation(folder, codes, files, mapping, truth, counter)
