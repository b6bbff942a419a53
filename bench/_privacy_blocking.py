"""The operator's frequency-alignment attack on blocking tokens.

A blocking token is a keyed MAC of a coarse key (a name's Soundex code and a
birth year, say): the operator cannot reverse it, but it sees how many events
share each token, and its domain tag. Coarse keys of skewed values have skewed
counts, so ranking tokens by count and values by their public frequency lines
them up (the frequency attack of Christen et al. on deterministic encodings).

The attacker here knows the key definitions (they are public code) and the
population's distribution exactly: it draws its own synthetic population from
the same public lists, counts each key value there, and labels each token seen
at least ``MIN_COUNT`` times with the value of the same frequency rank. A label
re-identifies a person when the surname most common among the attacker's
people with that value is the person's surname.
"""

from __future__ import annotations

import hmac
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

import jellyfish

from bench._privacy_people import Person
from connectors import Identity, postcode_outward

__all__ = [
    "LEGACY_SURNAME_DOMAINS",
    "SURNAME_DOMAINS",
    "KeyFunction",
    "align_components",
    "align_tokens",
    "legacy_keys",
    "legacy_tokens",
]

KeyFunction = Callable[[Identity], list[tuple[str, str]]]
MIN_COUNT = 3
#: Domains whose key carries something of the surname (the attack labels only these).
LEGACY_SURNAME_DOMAINS = frozenset({"sx-family+yob", "sx-names", "sx-family+dm"})
SURNAME_DOMAINS = frozenset({"sx-name+dm", "sx-name+postcode"})


def _soundex(name: str) -> str:
    return str(jellyfish.soundex(name.replace(" ", "")))


def legacy_keys(identity: Identity) -> list[tuple[str, str]]:
    """The blocking keys main derived at ``a0b9835``, kept here to be attacked."""
    given, family, dob = identity.given_name, identity.family_name, identity.date_of_birth
    keys = []
    if family and dob:
        keys.append(("sx-family+yob", f"{_soundex(family)}|{dob.year}"))
    if given and dob:
        keys.append(("sx-given+dob", f"{_soundex(given)}|{dob.isoformat()}"))
    if given and family:
        keys.append(("sx-names", "|".join(sorted((_soundex(given), _soundex(family))))))
    if dob and identity.postcode:
        keys.append(("outward+dob", f"{postcode_outward(identity.postcode)}|{dob.isoformat()}"))
    if family and dob:
        day_month = tuple(sorted((dob.day, dob.month)))
        keys.append(("sx-family+dm", f"{_soundex(family)}|{dob.year}|{day_month}"))
    return keys


def legacy_tokens(people: Sequence[Person], secret: bytes) -> list[list[tuple[str, bytes]]]:
    """What the operator held per event: (domain, MAC) pairs, as the connector made them."""
    return [
        [
            (d, hmac.digest(secret, f"{d}\x1f{v}".encode(), "sha256"))
            for d, v in legacy_keys(p.identity)
        ]
        for p in people
    ]


def align_tokens(
    observed: Sequence[Sequence[tuple[str, bytes]]],
    public: Sequence[Person],
    keys: KeyFunction,
    domains: frozenset[str],
) -> dict[int, str]:
    """Record index -> surname guessed through frequency-aligned blocking tokens."""
    scale = len(observed) / max(len(public), 1)
    labels: dict[int, tuple[int, str]] = {}
    for domain in sorted(domains):
        counts = Counter(t for record in observed for d, t in record if d == domain)
        expected: Counter[str] = Counter()
        surnames: dict[str, Counter[str]] = defaultdict(Counter)
        for person in public:
            for d, value in keys(person.identity):
                if d == domain:
                    expected[value] += 1
                    surnames[value][person.surname] += 1
        ranked_tokens = [t for t, c in counts.most_common() if c >= MIN_COUNT]
        ranked_values = [v for v, c in expected.most_common() if c * scale >= 1]
        guess = {
            token: surnames[value].most_common(1)[0][0]
            for token, value in zip(ranked_tokens, ranked_values, strict=False)
        }
        for row, record in enumerate(observed):
            for d, token in record:
                if d == domain and token in guess:
                    held = labels.get(row)
                    if held is None or counts[token] > held[0]:
                        labels[row] = (counts[token], guess[token])
    return {row: name for row, (_, name) in labels.items()}


def align_components(
    observed: Sequence[Sequence[tuple[str, bytes]]],
    public: Sequence[Person],
    domains: frozenset[str],
) -> dict[int, str]:
    """Record index -> surname, by linking tokens into surname-sound classes first.

    Tokens of surname-bearing domains that occur in one record belong to the
    same surname sound; joining them over all records (union-find) gathers,
    under the old keys, every person of one surname Soundex across birth years
    (``sx-family+yob`` joins given names within a year, ``sx-names`` joins years
    within a given name). The classes' sizes are then rank-aligned with the
    public Soundex-class sizes, each labelled with its class's commonest surname.
    """
    parent: dict[bytes, bytes] = {}

    def find(token: bytes) -> bytes:
        root = token
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while token != root:
            token, parent[token] = parent[token], root
        return root

    for record in observed:
        tokens = [t for d, t in record if d in domains]
        for token in tokens[1:]:
            a, b = find(tokens[0]), find(token)
            if a != b:
                parent[b] = a
    members: dict[bytes, list[int]] = defaultdict(list)
    for row, record in enumerate(observed):
        tokens = [t for d, t in record if d in domains]
        if tokens:
            members[find(tokens[0])].append(row)
    classes: Counter[str] = Counter()
    surnames: dict[str, Counter[str]] = defaultdict(Counter)
    for person in public:
        code = _soundex(person.surname)
        classes[code] += 1
        surnames[code][person.surname] += 1
    scale = len(observed) / max(len(public), 1)
    ranked = sorted((rows for rows in members.values() if len(rows) >= MIN_COUNT), key=len,
                    reverse=True)  # fmt: skip
    codes = [c for c, n in classes.most_common() if n * scale >= MIN_COUNT]
    labels: dict[int, str] = {}
    for rows, code in zip(ranked, codes, strict=False):
        name = surnames[code].most_common(1)[0][0]
        labels.update(dict.fromkeys(rows, name))
    return labels
