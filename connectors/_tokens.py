"""Keyed linkage tokens: exact tokens, blocking tokens and the fuzzy encoding (DESIGN 5).

Only member councils hold the linkage key, so only they can turn a person into
tokens; the broker sees HMAC values it can compare but not reverse. Every token
carries a domain tag (so an NHS number never collides with a UPRN) and the key's
epoch; during a key rotation the connector emits tokens under every key it
holds, so events published either side of the switch still meet.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jellyfish

from connectors._bloom import BloomEncoder
from connectors._errors import ConfigInvalid
from connectors._normalise import Identity, postcode_outward
from consent import HmacSha256, warn_if_exposed
from schemas import LinkageToken

__all__ = [
    "LOCALITY_FIELDS",
    "STREET_FIELDS",
    "LinkageKey",
    "Tokeniser",
    "Tokens",
    "blocking_keys",
    "generate_linkage_key",
    "load_linkage_keys",
    "opaque_reference",
]

_MIN_SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class LinkageKey:
    """The combined authority's linkage secret for one epoch. Never printed."""

    epoch: int
    secret: bytes = field(repr=False)
    # HMAC-SHA256 under ``secret`` with its pads hashed once: a row makes a dozen
    # tokens. Held by the key, so it lives and goes with the key.
    _keyed: HmacSha256 = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.secret) < _MIN_SECRET_BYTES:
            raise ConfigInvalid(f"linkage key epoch {self.epoch}: secret shorter than 32 bytes")
        object.__setattr__(self, "_keyed", HmacSha256(self.secret))

    def __reduce__(self) -> tuple[type[LinkageKey], tuple[int, bytes]]:
        """Pickled as epoch and secret: the hashing state is rebuilt, not copied."""
        return (LinkageKey, (self.epoch, self.secret))

    def mac(self, domain: str, value: str) -> bytes:
        return self._keyed.digest(f"{domain}\x1f{value}".encode())


def generate_linkage_key(epoch: int) -> LinkageKey:
    return LinkageKey(epoch, os.urandom(32))


#: An epoch travels in an Avro ``int`` in every token.
_MAX_EPOCH = 2**31 - 1


def load_linkage_keys(source: Path | str) -> tuple[LinkageKey, ...]:
    """Keys from a JSON file or JSON text: ``{"<epoch>": "<hex secret>", ...}``.

    The newest epoch is the current one; older ones are kept during a rotation.
    """
    if isinstance(source, Path):
        warn_if_exposed(source)  # the linkage key is the federation's most valuable secret
    try:  # a file that is not UTF-8 is a bad key file too (UnicodeDecodeError is a ValueError)
        text = source.read_text(encoding="utf-8") if isinstance(source, Path) else source
        document = json.loads(text)
        keys = tuple(
            sorted(
                (
                    LinkageKey(int(epoch), bytes.fromhex(secret))
                    for epoch, secret in document.items()
                ),
                key=lambda k: k.epoch,
            )
        )
    except (ValueError, AttributeError, TypeError):
        # Not chained, nor raised in here (``from None`` still keeps ``__context__``):
        # the parser's own message quotes the text it choked on, and an epoch and
        # secret given the wrong way round would put the secret in a log.
        keys = ()
        readable = False
    else:
        readable = True
    if not readable:
        raise ConfigInvalid("linkage keys: expected a JSON map of epoch to hex secret")
    if not keys:
        raise ConfigInvalid("linkage keys: none given")
    epochs = [k.epoch for k in keys]
    if len(set(epochs)) != len(epochs):
        raise ConfigInvalid("linkage keys: one epoch given twice (for example 1 and 01)")
    if not all(0 <= epoch <= _MAX_EPOCH for epoch in epochs):
        raise ConfigInvalid(f"linkage keys: epochs run from 0 to {_MAX_EPOCH}")
    return keys


def opaque_reference(key: LinkageKey, council: str, system: str, local_ref: str) -> str:
    """A council's own record reference, keyed so that it means nothing outside the council."""
    return key.mac("source-ref", f"{council}\x1f{system}\x1f{local_ref}").hex()[:32]


@dataclass(frozen=True, slots=True)
class Tokens:
    """What a subject becomes on the wire; ``epoch`` is the current key's."""

    tokens: tuple[LinkageToken, ...]
    blocking_tokens: tuple[LinkageToken, ...]
    fuzzy: bytes | None
    epoch: int


def _exact_keys(identity: Identity) -> list[tuple[str, str]]:
    keys = []
    if identity.nhs_number:
        keys.append(("nhs", identity.nhs_number))
    if identity.nino:
        keys.append(("nino", identity.nino))
    if identity.given_name and identity.family_name and identity.date_of_birth:
        name = f"{identity.given_name}|{identity.family_name}"
        keys.append(("name+dob", f"{name}|{identity.date_of_birth.isoformat()}"))
    return keys


def _soundex(name: str) -> str:
    return str(jellyfish.soundex(name.replace(" ", "")))


def _anagram(code: str) -> str:
    """The characters of ``code`` in sorted order, spaces dropped ("M14 4QL" -> "144LMQ").

    Transposed characters are the commonest slip in a typed postcode (FEBRL's
    "2450" for "2405", "M41" for "M14"); keyed on the sorted characters, the
    two still meet. The cost is a few merged postcodes, which Dice separates.
    """
    return "".join(sorted(code.replace(" ", "")))


#: ``identity.extra`` fields read as the street line and the locality of an
#: address (docs/concepts/mapping.md): the first of each present feeds the
#: ``street+locality`` key. A mapping that names them otherwise loses that key only.
STREET_FIELDS = ("street",)
LOCALITY_FIELDS = ("town", "suburb", "locality")


def _first_extra(identity: Identity, names: Sequence[str]) -> str | None:
    return next((identity.extra[n] for n in names if identity.extra.get(n)), None)


def blocking_keys(identity: Identity) -> list[tuple[str, str]]:
    """Coarse keys (domain, clear value), each surviving a different kind of error.

    Every key joins a name sound to a full date of birth or a full postcode, or
    is an address (a property, a street in a locality) with no name at all, so
    no key value is shared by more than a handful of people (a household, a
    street) and no count follows a surname's frequency. Keys that were common
    (Soundex of the surname with the birth year, Soundex of both names alone)
    gave the broker's operator a frequency table to align with public name
    lists (``bench/privacy.py`` re-identified people through them), so they are
    gone; docs/linkage.md has the measurement.
    """
    given, family, dob = identity.given_name, identity.family_name, identity.date_of_birth
    postcode = identity.postcode
    sounds = sorted({_soundex(n) for n in (given, family) if n})
    keys: list[tuple[str, str]] = []
    if dob:
        # Each name's sound with the birth date, day and month unordered, all under
        # one domain: survives the other name changed or misspelt, a move, names
        # swapped between columns, and day and month transposed.
        day_month = tuple(sorted((dob.day, dob.month)))
        keys.extend(("sx-name+dm", f"{sound}|{dob.year}|{day_month}") for sound in sounds)
    if dob and postcode:  # survives name errors and swapped names for people who stayed put
        keys.append(("outward+dob", f"{_anagram(postcode_outward(postcode))}|{dob.isoformat()}"))
    if identity.uprn:  # a property, not a person: household members share it
        keys.append(("uprn", identity.uprn))
    if postcode:
        # A wrong or missing date of birth with one name wrong: each name's sound
        # with the full postcode, both under one domain so that given and family
        # names swapped between columns still meet.
        place = _anagram(postcode)
        keys.extend(("sx-name+postcode", f"{sound}|{place}") for sound in sounds)
    street = _first_extra(identity, STREET_FIELDS)
    locality = _first_extra(identity, LOCALITY_FIELDS)
    if street and locality:
        # No name and no date: survives a missing date of birth with a wrong name
        # and a corrupted postcode, for people who stayed put. A street, not a
        # person, so its count says how many live there, nothing of their names.
        keys.append(("street+locality", f"{_anagram(street)}|{_anagram(locality)}"))
    return keys


def _fuzzy_fields(identity: Identity) -> dict[str, str]:
    fields = {
        "given_name": identity.given_name,
        "family_name": identity.family_name,
        "date_of_birth": identity.date_of_birth.isoformat() if identity.date_of_birth else None,
        "postcode": identity.postcode,
    }
    result = {k: v for k, v in fields.items() if v}
    result.update(identity.extra)
    return result


@dataclass(frozen=True, slots=True)
class Tokeniser:
    """Turns identities into tokens under every key held (newest is current)."""

    keys: Sequence[LinkageKey]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigInvalid("a tokeniser needs at least one linkage key")

    @property
    def current(self) -> LinkageKey:
        return max(self.keys, key=lambda k: k.epoch)

    def tokenise(self, identity: Identity) -> Tokens:
        return self.tokenise_many([identity])[0]

    def tokenise_many(self, identities: Sequence[Identity]) -> list[Tokens]:
        """``tokenise`` of each identity, with one batch Bloom pass (``encode_many``) for all."""
        ordered = sorted(self.keys, key=lambda k: -k.epoch)
        current = self.current
        fields = [_fuzzy_fields(identity) for identity in identities]
        fuzzy = iter(BloomEncoder(current.secret).encode_many(f for f in fields if f))
        out = []
        for identity, wanted in zip(identities, fields, strict=True):
            exact = _exact_keys(identity)
            blocking = blocking_keys(identity)
            out.append(
                Tokens(
                    tokens=tuple(
                        LinkageToken(d, k.epoch, k.mac(d, v)) for k in ordered for d, v in exact
                    ),
                    blocking_tokens=tuple(
                        LinkageToken(d, k.epoch, k.mac(d, v)) for k in ordered for d, v in blocking
                    ),
                    fuzzy=next(fuzzy) if wanted else None,
                    epoch=current.epoch,
                )
            )
        return out
