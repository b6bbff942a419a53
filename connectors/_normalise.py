"""Normalising and validating identifiers before they become tokens (DESIGN section 5).

Two councils can only link records whose identifiers are written the same way,
so every identifier is brought to one canonical form here. An invalid value is
reported (``InvalidIdentifier`` with the field and a reason code), never guessed
at: a wrong NHS number turned into a token would link the wrong people.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import MappingProxyType

from connectors._errors import InvalidIdentifier

__all__ = [
    "Identity",
    "normalise_date_of_birth",
    "normalise_free_text",
    "normalise_identity",
    "normalise_name",
    "normalise_nhs_number",
    "normalise_nino",
    "normalise_postcode",
    "normalise_uprn",
    "postcode_outward",
]

EARLIEST_BIRTH_YEAR = 1900
_TITLES = frozenset(
    {"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "lord", "lady", "rev", "master"}
)
_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][ABD-HJLNP-UW-Z]{2})$")
_NINO = re.compile(r"^[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z][0-9]{6}[A-D]$")
_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Identity:
    """A subject's identifiers in canonical form; None where the source had none.

    ``extra`` holds further free-text fields that only feed the fuzzy encoding
    (street, town, a local reference), already folded by ``normalise_free_text``.
    """

    given_name: str | None = None
    family_name: str | None = None
    date_of_birth: date | None = None
    postcode: str | None = None
    uprn: str | None = None
    nhs_number: str | None = None
    nino: str | None = None
    extra: Mapping[str, str] = field(default_factory=lambda: _EMPTY)


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def normalise_name(value: str, field_name: str = "name") -> str:
    """Case-folded, accent-free words; titles dropped; apostrophes joined, hyphens split.

    "Dr Siân O'Brien-Smyth" -> "sian obrien smyth".
    """
    text = _strip_accents(value).casefold().replace("'", "").replace("\u2019", "")
    words = re.sub(r"[^a-z]+", " ", text).split()
    while words and words[0] in _TITLES:
        words = words[1:]
    if not words:
        raise InvalidIdentifier(field_name, "no-letters")
    return " ".join(words)


def normalise_date_of_birth(value: str, date_format: str, *, today: date | None = None) -> date:
    """A date of birth in the stated format; impossible, future or pre-1900 dates refused."""
    try:
        parsed = datetime.strptime(value.strip(), date_format).date()
    except ValueError as exc:
        raise InvalidIdentifier("date_of_birth", "bad-format") from exc
    if parsed > (today or datetime.now(UTC).date()):
        raise InvalidIdentifier("date_of_birth", "in-future")
    if parsed.year < EARLIEST_BIRTH_YEAR:
        raise InvalidIdentifier("date_of_birth", "too-early")
    return parsed


def normalise_postcode(value: str) -> str:
    """A UK postcode as "M1 1AE"; anything not in the UK format is refused."""
    compact = re.sub(r"\s+", "", value).upper()
    match = _POSTCODE.match(compact)
    if match is None:
        raise InvalidIdentifier("postcode", "bad-format")
    return f"{match.group(1)} {match.group(2)}"


def postcode_outward(postcode: str) -> str:
    """The outward code ("M1" of "M1 1AE"), coarse enough for blocking."""
    return postcode.split(" ", 1)[0]


def normalise_uprn(value: str) -> str:
    """A Unique Property Reference Number: 1 to 12 digits, leading zeros dropped."""
    digits = value.strip()
    significant = digits.lstrip("0")
    if not digits.isdigit() or not 1 <= len(significant) <= 12:
        raise InvalidIdentifier("uprn", "bad-format")
    return significant


def normalise_nhs_number(value: str) -> str:
    """Ten digits whose last is the modulus-11 check digit of the first nine."""
    digits = re.sub(r"[\s-]", "", value)
    if not digits.isdigit() or len(digits) != 10:
        raise InvalidIdentifier("nhs_number", "bad-format")
    total = sum(int(d) * (10 - i) for i, d in enumerate(digits[:9]))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    if check == 10 or check != int(digits[9]):
        raise InvalidIdentifier("nhs_number", "bad-check-digit")
    return digits


def normalise_nino(value: str) -> str:
    """A National Insurance number: two prefix letters, six digits, suffix A-D."""
    compact = re.sub(r"\s+", "", value).upper()
    if not _NINO.match(compact) or compact[:2] in _NINO_BAD_PREFIXES:
        raise InvalidIdentifier("nino", "bad-format")
    return compact


def normalise_free_text(value: str) -> str:
    """For identifiers not in UK form: case and white space folded, nothing else assumed."""
    return " ".join(_strip_accents(value).casefold().split())


_FIELDS = ("given_name", "family_name", "date_of_birth", "postcode", "uprn", "nhs_number", "nino")


def normalise_identity(
    raw: Mapping[str, str | None],
    *,
    date_format: str = "%Y-%m-%d",
    free_text: frozenset[str] = frozenset(),
    today: date | None = None,
) -> Identity:
    """Normalise every identifier present in ``raw`` (canonical name -> source text).

    Fields are checked in a fixed order and the first invalid one is raised, so a
    quarantined row always names the same field. Keys outside the canonical set
    are further fuzzy fields (``extra``). Blank values count as missing.

    Raises:
        InvalidIdentifier: naming the field and the reason, never the value.
    """
    present = {k: v.strip() for k, v in raw.items() if v is not None and v.strip()}
    values: dict[str, object] = {}
    for name in _FIELDS:
        text = present.get(name)
        if text is None:
            continue
        if name in free_text:
            values[name] = normalise_free_text(text)
        elif name in ("given_name", "family_name"):
            values[name] = normalise_name(text, name)
        elif name == "date_of_birth":
            values[name] = normalise_date_of_birth(text, date_format, today=today)
        elif name == "postcode":
            values[name] = normalise_postcode(text)
        elif name == "uprn":
            values[name] = normalise_uprn(text)
        elif name == "nhs_number":
            values[name] = normalise_nhs_number(text)
        else:
            values[name] = normalise_nino(text)
    extra = {k: normalise_free_text(v) for k, v in sorted(present.items()) if k not in _FIELDS}
    return Identity(extra=MappingProxyType(extra), **values)  # type: ignore[arg-type]
