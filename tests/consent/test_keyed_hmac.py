"""HmacSha256 is HMAC-SHA256, byte for byte, for every key length and message."""

from __future__ import annotations

import hmac

from hypothesis import given
from hypothesis import strategies as st

from consent import HmacSha256


@given(key=st.binary(max_size=200), message=st.binary(max_size=300))
def test_digest_equals_the_standard_library_hmac(key: bytes, message: bytes) -> None:
    assert HmacSha256(key).digest(message) == hmac.digest(key, message, "sha256")


def test_one_key_serves_many_messages_independently() -> None:
    keyed = HmacSha256(b"k" * 32)
    for message in (b"", b"a", b"a" * 64, b"a" * 65, b"b" * 1000, b""):
        assert keyed.digest(message) == hmac.digest(b"k" * 32, message, "sha256")


def test_block_sized_and_longer_keys_follow_rfc_2104() -> None:
    for size in (63, 64, 65, 128):
        key = bytes(range(size))
        assert HmacSha256(key).digest(b"m") == hmac.digest(key, b"m", "sha256")


def test_repr_hides_the_key() -> None:
    assert "k" * 8 not in repr(HmacSha256(b"k" * 32))
