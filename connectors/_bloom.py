"""The keyed Bloom-filter encoding that lets the broker compare names it cannot read.

Parameter set ``clk-v2`` (``ENCODING``), documented in ``docs/linkage.md``:

1. **Record-level Bloom filter with field weights** (a CLK, Schnell et al.
   2009/2011): each field's padded character bigrams set ``k`` bits of one
   ``BLOOM_BITS``-bit array, ``k`` per field from ``DEFAULT_FIELD_HASHES`` (more
   bits for the fields that tell people apart best). Given and family names
   share one key, so names a clerk swapped set the same bits.
2. **Independent positions.** Each bigram's ``k`` positions are read straight
   from HMAC-SHA256 under a key derived from the linkage key and the field name
   (keyed BLAKE2b, a PRF: 16 bits per position, a fresh block per 32). ``clk-v1`` used
   double hashing, ``h1 + i*h2``, which leaves only 1024 x 512 possible position
   sets per ``k`` whatever the key: an operator could enumerate them all and
   mine which occur (Christen et al. 2017; ``bench/privacy.py`` does).
3. **Keyed diffusion** (Armknecht, Heng and Schnell, PoPETs 2023): output bit
   ``j`` is the XOR of ``DIFFUSION_TAPS`` input bits at positions drawn from the
   linkage key. A frequent bigram then no longer sets a fixed group of output
   bits, and every output bit is set for about half of all people, so the
   pattern mining that finds frequent bigrams in plain Bloom filters
   (Vidanage et al. 2019) has nothing to mine. Small input differences stay
   small output differences (each input bit feeds about ``DIFFUSION_TAPS``
   output bits), so Dice still ranks similar records first; unrelated records
   score about 0.5 instead of about 0.3.

Format (what the broker's Dice reads): ``BLOOM_BITS`` bits, ``BLOOM_BITS // 8``
bytes, bit ``i`` is bit ``i % 8`` (least significant first) of byte ``i // 8``.
Encodings of different parameter sets (or key epochs) are unrelated bit strings
and must never be compared.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

__all__ = [
    "BLOOM_BITS",
    "DEFAULT_FIELD_HASHES",
    "DIFFUSION_TAPS",
    "ENCODE_CHUNK",
    "ENCODING",
    "BloomEncoder",
    "bigrams",
]

#: The parameter set every event names (``CitizenEvent.encoding``); change it with the
#: parameters, so a broker never compares encodings made under different ones.
ENCODING = "clk-v2"
BLOOM_BITS = 1024
DEFAULT_FIELD_HASHES: Mapping[str, int] = MappingProxyType(
    {"given_name": 12, "family_name": 14, "date_of_birth": 8, "postcode": 6}
)
EXTRA_FIELD_HASHES = 4
#: Fields hashed under one key, so a value in the other field sets the same bits:
#: given and family names swapped by a clerk still score high.
_SHARED_KEYS: Mapping[str, str] = MappingProxyType({"given_name": "name", "family_name": "name"})
#: Input bits XOR-ed into each output bit; see docs/linkage.md for the trade-off.
DIFFUSION_TAPS = 3
_UNPACK = struct.Struct("<32H").unpack
_KEY_CACHE = 256  # fields x key epochs
_GRAM_CACHE = 1 << 17  # bigrams x fields x key epochs
_DIFFUSION_CACHE = 8  # key epochs held at once during a rotation, with room to spare
_VALUE_CACHE = 1 << 16  # distinct values per field and key epoch: tens of MB at most
#: Records diffused per numpy pass: bounds the (records, bits) temporaries to a few MiB.
ENCODE_CHUNK = 4096
_Tables = dict[tuple[bytes, str, int, int], dict[str, int]]
_VALUE_TABLES: _Tables = {}
_GRAM_TABLES: _Tables = {}


def bigrams(text: str) -> list[str]:
    """Padded character bigrams: "ann" -> "_a", "an", "nn", "n_"."""
    padded = f"_{text}_"
    return [padded[i : i + 2] for i in range(len(padded) - 1)]


@lru_cache(maxsize=_GRAM_CACHE)
def _positions(secret: bytes, name: str, gram: str, k: int, bits: int) -> tuple[int, ...]:
    """``k`` positions, each from its own 16 bits of keyed output (no arithmetic relation).

    Cached: names draw on a few thousand distinct bigrams per field, so after
    the first records an encoding costs lookups, not hashing.
    """
    key = _field_key(secret, name)
    out: list[int] = []
    block = 0
    while len(out) < k:
        digest = hashlib.blake2b(
            gram.encode(), key=key, person=bytes([block]), digest_size=64
        ).digest()
        out.extend(_UNPACK(digest)[: k - len(out)])
        block += 1
    return tuple(v % bits for v in out)


def _value_table(
    secret: bytes, name: str, k: int, bits: int, tables: _Tables | None = None
) -> dict[str, int]:
    """Filter bits by field value, as an int mask, for one (key, field key, k, bits).

    Names, postcodes and dates repeat across a council's rows, so most values
    cost one dict lookup instead of one cached ``_positions`` call per bigram.
    The values are clear identifiers, held only in the memory of the connector
    (or ``link``) process that read them anyway. Bounded: a table past
    ``_VALUE_CACHE`` values starts again empty.
    """
    store = _VALUE_TABLES if tables is None else tables
    key = (secret, name, k, bits)
    table = store.get(key)
    if table is None or len(table) > _VALUE_CACHE:
        if len(store) >= _KEY_CACHE:
            store.clear()
        table = store[key] = {}
    return table


def _value_mask(secret: bytes, name: str, value: str, k: int, bits: int) -> int:
    grams = _value_table(secret, name, k, bits, _GRAM_TABLES)  # bigram -> its bits
    mask = 0
    for gram in set(bigrams(value)):
        gram_bits = grams.get(gram)
        if gram_bits is None:
            gram_bits = 0
            for position in _positions(secret, name, gram, k, bits):
                gram_bits |= 1 << position
            grams[gram] = gram_bits
        mask |= gram_bits
    return mask


@lru_cache(maxsize=_KEY_CACHE)
def _field_key(secret: bytes, name: str) -> bytes:
    return hmac.digest(secret, b"bloom-field:" + name.encode(), "sha256")


@lru_cache(maxsize=_DIFFUSION_CACHE)
def _diffusion_taps(secret: bytes, bits: int, taps: int) -> npt.NDArray[np.intp]:
    """Row ``j`` lists the input bits XOR-ed into output bit ``j``, drawn from the key.

    Every input bit feeds exactly ``taps`` output bits (each row of a random
    permutation's ``taps`` copies), so no input bit is lost or over-weighted.
    """
    seed = hmac.digest(secret, b"bloom-diffusion:" + bits.to_bytes(4, "big"), "sha256")
    rng = np.random.Generator(np.random.PCG64(int.from_bytes(seed, "big")))
    columns = [rng.permutation(bits) for _ in range(taps)]
    matrix = np.stack(columns, axis=1).astype(np.intp)
    matrix.setflags(write=False)
    return matrix


@dataclass(frozen=True, slots=True)
class BloomEncoder:
    """Encodes field values under one linkage key as parameter set ``ENCODING``.

    Args:
        secret: the linkage key's secret (never logged).
        bits: filter length (default ``BLOOM_BITS``; the broker compares equal lengths only).
        field_hashes: bits set per bigram of each field (default ``DEFAULT_FIELD_HASHES``;
            other fields get ``EXTRA_FIELD_HASHES``).
        taps: diffusion taps per output bit (default ``DIFFUSION_TAPS``).
    """

    secret: bytes = field(repr=False)
    bits: int = BLOOM_BITS
    field_hashes: Mapping[str, int] = field(default_factory=lambda: DEFAULT_FIELD_HASHES)
    taps: int = DIFFUSION_TAPS

    def _mask(self, fields: Mapping[str, str]) -> int:
        """The Bloom filter of one record before diffusion, bit ``i`` of the int = bit ``i``."""
        mask = 0
        for name, value in fields.items():
            k = self.field_hashes.get(name, EXTRA_FIELD_HASHES)
            keyed = _SHARED_KEYS.get(name, name)
            table = _value_table(self.secret, keyed, k, self.bits)
            bits = table.get(value)
            if bits is None:
                bits = table[value] = _value_mask(self.secret, keyed, value, k, self.bits)
            mask |= bits
        return mask

    def _diffuse(self, filters: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """Diffusion of filters laid out one row per *bit* (bits, records), same layout out.

        Bit-major, each tap gathers whole contiguous rows (a memcpy each), several
        times faster than gathering columns of a record-major matrix; XOR is
        associative, so the taps may be applied in any order.
        """
        taps = _diffusion_taps(self.secret, self.bits, self.taps)
        diffused = filters[taps[:, 0]]
        for column in range(1, taps.shape[1]):
            diffused ^= filters[taps[:, column]]
        return diffused

    def encode(self, fields: Mapping[str, str]) -> bytes:
        """The encoding of these (already normalised) field values."""
        return self.encode_many([fields])[0]

    def encode_many(self, records: Iterable[Mapping[str, str]]) -> list[bytes]:
        """Encodings of many records at once, bit-identical to ``encode`` of each.

        Vectorised: a record's filter is an int, the OR of one cached mask per
        field value; the filters of ``ENCODE_CHUNK`` records are unpacked,
        diffused and packed in a few numpy passes, so the per-record Python
        work is a handful of dict lookups (a connector batch, or ``fedbroker
        link``'s 200,000 rows).
        """
        out: list[bytes] = []
        chunk: list[Mapping[str, str]] = []
        for record in records:
            chunk.append(record)
            if len(chunk) == ENCODE_CHUNK:
                out.extend(self._encode_chunk(chunk))
                chunk = []
        if chunk:
            out.extend(self._encode_chunk(chunk))
        return out

    def _encode_chunk(self, records: Sequence[Mapping[str, str]]) -> list[bytes]:
        width = (self.bits + 7) // 8
        masks = b"".join(self._mask(r).to_bytes(width, "little") for r in records)
        rows = np.frombuffer(masks, dtype=np.uint8).reshape(len(records), width)
        filters = np.unpackbits(rows, axis=1, count=self.bits, bitorder="little")
        diffused = self._diffuse(np.ascontiguousarray(filters.T))
        packed = np.packbits(diffused, axis=0, bitorder="little").T
        data = np.ascontiguousarray(packed).tobytes()
        return [data[i * width : (i + 1) * width] for i in range(len(records))]
