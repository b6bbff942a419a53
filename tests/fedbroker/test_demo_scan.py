"""The demo's privacy scan: clear values count, chance letters inside base64 do not."""

from __future__ import annotations

from fedbroker.cli._demo import _found


def test_a_value_in_clear_is_found_wherever_it_is_delimited():
    for haystack in (b'{"surname":"Yates"}', b"\x0aYates\x02", b"Yates", b"1 Yates Street"):
        assert _found(b"Yates", haystack), haystack


def test_the_same_letters_inside_base64_text_are_not_a_leak():
    assert not _found(b"Yates", b"Uzbe3GZzYates3Lyw2DqY9xD6")
    assert _found(b"Yates", b"Uzbe3GZzYates3Lyw2DqY9xD6 Yates")
