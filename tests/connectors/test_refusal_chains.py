"""A refused value is in no exception a refusal chains to.

``InvalidIdentifier`` keeps only a field and a code, but it was raised inside
the ``except`` that caught the parser's error: Python links that error as
``__cause__``/``__context__``, and its text quotes the value
(``Invalid isoformat string: 'Ann Example'``, ``'Ann Example' is not a valid
EventType``). Whoever printed the refusal's traceback printed the value.
"""

from __future__ import annotations

import traceback

import pytest

from connectors import ConfigInvalid, InvalidIdentifier, load_linkage_keys, parse_timestamp
from connectors._mapping import ColumnOrFixed
from tests.connectors.test_attribute_codes import _event, federation

__all__ = ["federation"]

VALUE = "Ann Example"


def _links(exc: BaseException) -> list[BaseException]:
    found, todo = [], [exc]
    while todo:
        one = todo.pop()
        found.append(one)
        todo.extend(e for e in (one.__cause__, one.__context__) if e is not None)
    return found


def _assert_no_value(exc: BaseException) -> None:
    assert len(_links(exc)) == 1, [type(e).__name__ for e in _links(exc)]
    assert VALUE not in "".join(traceback.format_exception(exc))


@pytest.mark.parametrize("fmt", [None, "%d/%m/%Y"])
def test_a_time_that_does_not_parse_chains_nothing(fmt):
    with pytest.raises(InvalidIdentifier) as caught:
        parse_timestamp(VALUE, ColumnOrFixed(column="at", format=fmt), "occurred_at")
    assert caught.value.code == "bad-format"
    _assert_no_value(caught.value)


def test_an_event_type_not_in_the_catalogue_chains_nothing(federation):
    with pytest.raises(InvalidIdentifier) as caught:
        _event(federation, e=VALUE)
    assert (caught.value.field, caught.value.code) == ("event_type", "unknown")
    _assert_no_value(caught.value)


def test_a_linkage_key_file_that_is_no_json_keeps_no_part_of_it():
    """``from None`` hid the parser's error from tracebacks but kept it as
    ``__context__``, and a ``JSONDecodeError`` holds the whole text (``doc``): the
    secret of a key file with one comma missing."""
    secret = "5f" * 32
    with pytest.raises(ConfigInvalid) as caught:
        load_linkage_keys('{"1": "' + secret + '" "2": "00"}')
    assert len(_links(caught.value)) == 1
    assert secret not in repr(vars(caught.value))
