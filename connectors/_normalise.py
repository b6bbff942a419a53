"""Normalising and validating identifiers before they become tokens (DESIGN section 5).

Two councils can only link records whose identifiers are written the same way,
so every identifier is brought to one canonical form here. An invalid value is
reported (``InvalidIdentifier`` with the field and a reason code), never guessed
at: a wrong NHS number turned into a token would link the wrong people.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType

from connectors._dates import normalise_date_of_birth
from connectors._errors import InvalidIdentifier

__all__ = [
    "MAX_VALUE_CHARS",
    "DroppedField",
    "Identity",
    "normalise_date_of_birth",
    "normalise_fields",
    "normalise_free_text",
    "normalise_identity",
    "normalise_name",
    "normalise_nhs_number",
    "normalise_nino",
    "normalise_postcode",
    "normalise_uprn",
    "postcode_outward",
]

#: Longer than any real identifier; a longer value is dropped (``too-long``), which
#: also keeps an oversized cell from making an oversized message.
MAX_VALUE_CHARS = 256
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


#: Invisible format characters a paste brings along (soft hyphen, zero-width space and
#: joiners, direction marks and overrides, word joiner, byte-order mark): never part
#: of a name, and left in they split one ("Sa<ZWSP>rah" was "sa rah").
_INVISIBLE = dict.fromkeys(
    map(ord, "\u00ad\u061c\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c"
             "\u202d\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff")
)  # fmt: skip
#: Latin letters NFKD leaves whole, spelt as English-language systems write them:
#: "Łukasz Wałęsa" is "Lukasz Walesa" there, and was "ukasz wa esa" here.
_UNDECOMPOSED = str.maketrans(
    {"ł": "l", "ø": "o", "æ": "ae", "œ": "oe", "đ": "d", "ð": "d", "þ": "th", "ħ": "h",
     "ı": "i", "ŀ": "l", "ŧ": "t", "ŋ": "n", "ĸ": "k"}
)  # fmt: skip


def _fold(text: str) -> str:
    """Case-folded, accent-free, without invisible characters, undecomposed letters spelt."""
    if text.isascii():
        return text.casefold()
    decomposed = unicodedata.normalize("NFKD", text.translate(_INVISIBLE))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return bare.casefold().translate(_UNDECOMPOSED)


def normalise_name(value: str, field_name: str = "name") -> str:
    """Case-folded, accent-free words; titles dropped; apostrophes joined, hyphens split.

    "Dr Siân O'Brien-Smyth" -> "sian obrien smyth". A title is dropped only as a
    leading word followed by a name, and never from a family name: "Lord",
    "Sir" and "Dame" are also surnames, and a resident called Jane Lord must
    keep her surname (and her row).
    """
    text = _fold(value).replace("'", "").replace("\u2019", "")
    if not text.isascii():
        # A modifier letter left by the folding is an apostrophe (OʼBrien, an okina).
        text = "".join(c for c in text if unicodedata.category(c) != "Lm")
        # Any other letter outside a-z (a Cyrillic o in "John", a Greek capital alpha)
        # was dropped as if punctuation: a different name, linked on. Refused instead.
        if any(c.isalpha() and not c.isascii() for c in text):
            raise InvalidIdentifier(field_name, "unsupported-letters")
    words = re.sub(r"[^a-z]+", " ", text).split()
    if field_name != "family_name":
        while len(words) > 1 and words[0] in _TITLES:
            words = words[1:]
    if not words:
        raise InvalidIdentifier(field_name, "no-letters")
    return " ".join(words)


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


def _ascii_digits(text: str) -> bool:
    """Only 0-9: ``str.isdigit`` also takes "²" (which ``int`` refuses) and "９" or "٩",
    which would make a token no other council's ASCII form of the number meets."""
    return text.isascii() and text.isdigit()


def normalise_uprn(value: str) -> str:
    """A Unique Property Reference Number: 1 to 12 digits, leading zeros dropped."""
    digits = value.strip()
    significant = digits.lstrip("0")
    if not _ascii_digits(digits) or not 1 <= len(significant) <= 12:
        raise InvalidIdentifier("uprn", "bad-format")
    return significant


def normalise_nhs_number(value: str) -> str:
    """Ten digits whose last is the modulus-11 check digit of the first nine."""
    digits = re.sub(r"[\s-]", "", value)
    if not _ascii_digits(digits) or len(digits) != 10:
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
    return " ".join(_fold(value).split())


_FIELDS = ("given_name", "family_name", "date_of_birth", "postcode", "uprn", "nhs_number", "nino")


@dataclass(frozen=True, slots=True)
class DroppedField:
    """An identifier left out of a row because its value failed validation.

    Names the field and the reason code only: this is what the quarantine, the
    metrics and ``fedbroker link``'s report carry, never the value.
    """

    field: str
    code: str


def _normalise_one(
    name: str,
    text: str,
    *,
    date_format: str | Sequence[str],
    free_text: frozenset[str],
    today: date | None,
    two_digit_year_pivot: int | None,
) -> object:
    if len(text) > MAX_VALUE_CHARS:
        raise InvalidIdentifier(name, "too-long")
    if name in free_text:
        return normalise_free_text(text)
    if name in ("given_name", "family_name"):
        return normalise_name(text, name)
    if name == "date_of_birth":
        return normalise_date_of_birth(
            text, date_format, today=today, two_digit_year_pivot=two_digit_year_pivot
        )
    if name == "postcode":
        return normalise_postcode(text)
    if name == "uprn":
        return normalise_uprn(text)
    if name == "nhs_number":
        return normalise_nhs_number(text)
    return normalise_nino(text)


def normalise_fields(
    raw: Mapping[str, str | None],
    *,
    date_format: str | Sequence[str] = "%Y-%m-%d",
    free_text: frozenset[str] = frozenset(),
    today: date | None = None,
    two_digit_year_pivot: int | None = None,
) -> tuple[Identity, tuple[DroppedField, ...]]:
    """Normalise every identifier present in ``raw``, dropping the invalid ones.

    A malformed value costs that value, not the row: the rest of the row still
    links. Keys outside the canonical set are further fuzzy fields (``extra``);
    blank values count as missing. A ``free_text`` date of birth has no calendar
    form to be, so it feeds the fuzzy encoding only (as ``extra``, under the
    same field name, so it still meets a parsed date written the same way).

    Args:
        raw: canonical name -> source text.
        date_format: ``strptime`` format(s) of the date of birth (default ISO).
        free_text: identifiers folded as text instead of validated (default none).
        today: the latest possible birth (default None: today).
        two_digit_year_pivot: see ``normalise_date_of_birth`` (default None).

    Returns:
        The identity, and the dropped fields in canonical order.
    """
    present = {k: v.strip() for k, v in raw.items() if v is not None and v.strip()}
    values: dict[str, object] = {}
    dropped: list[DroppedField] = []
    extra: dict[str, str] = {}
    for name in _FIELDS:
        text = present.get(name)
        if text is None:
            continue
        try:
            value = _normalise_one(
                name,
                text,
                date_format=date_format,
                free_text=free_text,
                today=today,
                two_digit_year_pivot=two_digit_year_pivot,
            )
        except InvalidIdentifier as exc:
            dropped.append(DroppedField(exc.field, exc.code))
            continue
        if name == "date_of_birth" and isinstance(value, str):
            extra[name] = value
        else:
            values[name] = value
    for name, text in sorted(present.items()):
        if name in _FIELDS:
            continue
        if len(text) > MAX_VALUE_CHARS:
            dropped.append(DroppedField(name, "too-long"))
            continue
        extra[name] = normalise_free_text(text)
    identity = Identity(extra=MappingProxyType(extra), **values)  # type: ignore[arg-type]
    return identity, tuple(dropped)


def normalise_identity(
    raw: Mapping[str, str | None],
    *,
    date_format: str | Sequence[str] = "%Y-%m-%d",
    free_text: frozenset[str] = frozenset(),
    today: date | None = None,
    two_digit_year_pivot: int | None = None,
) -> Identity:
    """Like ``normalise_fields``, but strict: the first invalid identifier is raised.

    For a single person's details typed in by hand (``audit subject``), where a
    typo must be shown, not worked around.

    Raises:
        InvalidIdentifier: naming the field and the reason, never the value.
    """
    identity, dropped = normalise_fields(
        raw,
        date_format=date_format,
        free_text=free_text,
        today=today,
        two_digit_year_pivot=two_digit_year_pivot,
    )
    if dropped:
        raise InvalidIdentifier(dropped[0].field, dropped[0].code)
    return identity
