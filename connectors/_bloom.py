"""The keyed Bloom-filter encoding that lets the broker compare names it cannot read.

Each field's character bigrams are hashed into one shared bit array (a CLK,
"cryptographic long-term key", as in Schnell et al. 2009). Similar identifiers
set mostly the same bits, so Sørensen–Dice on the arrays approximates string
similarity. Hardening against frequency attacks: every position comes from
HMAC-SHA256 under a key derived from the linkage key *and* the field name, so
without the key nobody can tell which bits a common bigram sets, and the same
bigram in different fields sets unrelated bits.

Format (what the broker's Dice reads): ``BLOOM_BITS`` bits, ``BLOOM_BITS // 8``
bytes, bit ``i`` is bit ``i % 8`` (least significant first) of byte ``i // 8``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["BLOOM_BITS", "DEFAULT_FIELD_HASHES", "BloomEncoder", "bigrams"]

BLOOM_BITS = 1024
#: The parameter set every event names (``CitizenEvent.encoding``); change it with the
#: parameters, so a broker never compares encodings made under different ones.
ENCODING = "clk-v1"
DEFAULT_FIELD_HASHES: Mapping[str, int] = MappingProxyType(
    {"given_name": 12, "family_name": 14, "date_of_birth": 8, "postcode": 6}
)
EXTRA_FIELD_HASHES = 4


def bigrams(text: str) -> list[str]:
    """Padded character bigrams: "ann" -> "_a", "an", "nn", "n_"."""
    padded = f"_{text}_"
    return [padded[i : i + 2] for i in range(len(padded) - 1)]


@dataclass(frozen=True, slots=True)
class BloomEncoder:
    """Encodes field values under one linkage key; k hash positions per bigram per field."""

    secret: bytes
    bits: int = BLOOM_BITS
    field_hashes: Mapping[str, int] = field(default_factory=lambda: DEFAULT_FIELD_HASHES)

    def _field_key(self, name: str) -> bytes:
        return hmac.new(self.secret, b"bloom-field:" + name.encode(), hashlib.sha256).digest()

    def encode(self, fields: Mapping[str, str]) -> bytes:
        """The bit array for these (already normalised) field values."""
        array = 0
        for name, value in sorted(fields.items()):
            k = self.field_hashes.get(name, EXTRA_FIELD_HASHES)
            key = self._field_key(name)
            for gram in bigrams(value):
                digest = hmac.digest(key, gram.encode(), "sha256")
                h1 = int.from_bytes(digest[:8], "little")
                h2 = int.from_bytes(digest[8:16], "little") | 1
                for i in range(k):
                    array |= 1 << ((h1 + i * h2) % self.bits)
        return array.to_bytes(self.bits // 8, "little")
