"""Synthetic people with realistic surname frequencies, for the privacy bench.

Frequency attacks live on skew: Smith is about 1.15% of people in England and
Wales, the 500th name about 0.02%. Faker's ``en_GB`` draws surnames in
proportion to its weights *normalised over its 500 names*, which inflates every
name about 2.5 times; real extracts have a long tail. So the surnames here come
from the list below (percent of the population of England and Wales, the
commonest 80), then a tail of rarer names (Faker's ``en_GB`` list beyond those,
and Irish names from ``en_IE``) sharing the remaining mass equally. The
attacker is given exactly this list: the strongest fair assumption, since such
lists are public.

Forenames, dates of birth (18 to 90 years old) and postcodes come from Faker
``en_GB``, as in the project's synthetic councils.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date

from faker import Faker

from connectors import Identity, InvalidIdentifier, normalise_name, normalise_postcode

__all__ = ["COMMON_SURNAMES", "Person", "SurnameList", "people", "surname_list"]

#: (surname, percent of people in England and Wales), commonest first.
COMMON_SURNAMES: tuple[tuple[str, float], ...] = (
    ("Smith", 1.15), ("Jones", 0.94), ("Williams", 0.66), ("Taylor", 0.53), ("Brown", 0.51),
    ("Davies", 0.48), ("Evans", 0.39), ("Thomas", 0.35), ("Wilson", 0.35), ("Johnson", 0.34),
    ("Roberts", 0.33), ("Robinson", 0.29), ("Thompson", 0.28), ("Wright", 0.28), ("White", 0.27),
    ("Edwards", 0.27), ("Walker", 0.27), ("Hughes", 0.26), ("Green", 0.25), ("Harris", 0.25),
    ("Hall", 0.25), ("Lewis", 0.25), ("Clarke", 0.24), ("Patel", 0.24), ("Jackson", 0.24),
    ("Wood", 0.24), ("Martin", 0.23), ("Turner", 0.23), ("Cooper", 0.22), ("Hill", 0.22),
    ("Ward", 0.21), ("Moore", 0.21), ("Morris", 0.21), ("Clark", 0.2), ("King", 0.2),
    ("Harrison", 0.2), ("Lee", 0.2), ("Baker", 0.2), ("Allen", 0.19), ("James", 0.19),
    ("Morgan", 0.19), ("Phillips", 0.18), ("Scott", 0.18), ("Parker", 0.17), ("Price", 0.17),
    ("Davis", 0.17), ("Watson", 0.17), ("Griffiths", 0.16), ("Kelly", 0.16), ("Mitchell", 0.16),
    ("Young", 0.16), ("Bennett", 0.16), ("Bailey", 0.15), ("Collins", 0.15), ("Cook", 0.15),
    ("Richardson", 0.15), ("Carter", 0.15), ("Shaw", 0.15), ("Bell", 0.15), ("Khan", 0.14),
    ("Murphy", 0.14), ("Richards", 0.14), ("Marshall", 0.14), ("Cox", 0.14), ("Miller", 0.14),
    ("Wilkinson", 0.13), ("Anderson", 0.13), ("Foster", 0.13), ("Adams", 0.13), ("Ellis", 0.13),
    ("Begum", 0.13), ("Singh", 0.13), ("Simpson", 0.13), ("Webb", 0.12), ("Chapman", 0.12),
    ("Rogers", 0.12), ("Ali", 0.12), ("Powell", 0.12), ("Mason", 0.12), ("Gray", 0.12),
)  # fmt: skip
_TAIL_LOCALES = ("en_GB", "en_IE")


@dataclass(frozen=True, slots=True)
class SurnameList:
    """The public surname list: normalised names and their population shares (sum 1)."""

    names: tuple[str, ...]
    shares: tuple[float, ...]

    def top(self, count: int) -> tuple[str, ...]:
        return self.names[:count]


def surname_list() -> SurnameList:
    """The common names with their real shares, then the tail sharing what is left."""
    common = [(normalise_name(n), p / 100) for n, p in COMMON_SURNAMES]
    seen = {n for n, _ in common}
    tail: list[str] = []
    for locale in _TAIL_LOCALES:
        for raw in _last_names(locale):
            try:
                name = normalise_name(raw)
            except InvalidIdentifier:
                continue
            if name not in seen and " " not in name:
                seen.add(name)
                tail.append(name)
    rest = 1.0 - sum(p for _, p in common)
    names = tuple(n for n, _ in common) + tuple(tail)
    shares = tuple(p for _, p in common) + (rest / len(tail),) * len(tail)
    return SurnameList(names, shares)


def _last_names(locale: str) -> list[str]:
    fake = Faker(locale)
    for provider in fake.get_providers():
        names = getattr(provider, "last_names", None)
        if names:
            return sorted(names)
    return []


@dataclass(frozen=True, slots=True)
class Person:
    """One synthetic person: normalised identity and the truth the bench scores against."""

    identity: Identity
    surname: str


def people(count: int, *, seed: int, surnames: SurnameList | None = None) -> list[Person]:
    """``count`` people with surnames drawn by population share, the rest from Faker."""
    names = surnames or surname_list()
    rng = random.Random(seed)
    fake = Faker("en_GB")
    fake.seed_instance(seed)
    drawn = rng.choices(names.names, weights=names.shares, k=count)
    result: list[Person] = []
    today = date.today()
    for surname in drawn:
        given = normalise_name(fake.first_name())
        dob = fake.date_of_birth(minimum_age=18, maximum_age=90)
        while True:
            try:
                postcode = normalise_postcode(fake.postcode())
                break
            except InvalidIdentifier:
                continue
        if dob > today:  # pragma: no cover - Faker keeps to the range asked for
            continue
        identity = Identity(
            given_name=given, family_name=surname, date_of_birth=dob, postcode=postcode
        )
        result.append(Person(identity, surname))
    return result
