"""The demo's privacy scan: clear values count, chance letters inside base64 do not."""

from __future__ import annotations

from fedbroker._demo import clear_values, count_in_clear
from fedbroker.cli._demo import _found


def test_a_value_in_clear_is_found_wherever_it_is_delimited():
    for haystack in (b'{"surname":"Yates"}', b"\x0aYates\x02", b"Yates", b"1 Yates Street"):
        assert _found(b"Yates", haystack), haystack


def test_the_same_letters_inside_base64_text_are_not_a_leak():
    assert not _found(b"Yates", b"Uzbe3GZzYates3Lyw2DqY9xD6")
    assert _found(b"Yates", b"Uzbe3GZzYates3Lyw2DqY9xD6 Yates")


def _extract(tmp_path, **person):
    row = {"ref": "R-1", "forename": "Ann", "surname": "Example-Jones", "dob": "14/02/1984",
           "postcode": "M1 1AE", "address_1": "1 Piccadilly", "nhs_no": "9434765919",
           "ni_number": "JG103759A", **person}  # fmt: skip
    path = tmp_path / "extract.csv"
    path.write_text(",".join(row) + "\n" + ",".join(row.values()) + "\n", encoding="utf-8")
    return path


def test_a_forename_or_a_postcode_alone_in_clear_is_a_leak(tmp_path):
    needles = clear_values([_extract(tmp_path, forename="Beatrice")])
    # Avro strings are length-prefixed: the byte before a value is its length.
    for leaked in (b"\x10Beatrice\x02", b'{"forename": "BEATRICE"}', b"\x0cM1 1AE\x00",
                   b'"postcode":"M11AE"'):  # fmt: skip
        assert count_in_clear(needles, b"\x00\x93" + leaked + b"\x7f") == 1, leaked
    assert count_in_clear(needles, b"\x00\x93 nothing personal \x7f") == 0


def test_short_values_are_left_out_rather_than_matched_by_chance(tmp_path):
    needles = clear_values([_extract(tmp_path)])
    assert b"Ann" not in needles and b"ANN" not in needles
    assert {b"Example-Jones", b"M1 1AE", b"M11AE", b"9434765919"} <= needles
