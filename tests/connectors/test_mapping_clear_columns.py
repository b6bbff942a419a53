"""An attribute may not read a column the mapping treats as personal.

Attributes travel unsealed to the broker. A clerk's slip, ``band: surname``,
compiled and published every resident's surname in clear on ``fed.events``
and into the broker's state. This test failed on the code before its fix.
"""

from __future__ import annotations

import pytest

from connectors import MappingInvalid, parse_mapping
from tests.connectors.test_mapping import GOOD


@pytest.mark.parametrize(
    "column",
    ["surname", "dob", "address_1", "account_ref", "sealed_name"],
    ids=["identifier", "date of birth", "extra fuzzy field", "reference", "payload field"],
)
def test_an_attribute_reading_a_personal_column_is_refused(column):
    doc = dict(GOOD, attributes={"band": column})
    doc["payload"] = {"account_reference": "account_ref", "given_name": "sealed_name"}
    with pytest.raises(MappingInvalid) as caught:
        parse_mapping(doc)
    assert "attributes.band" in str(caught.value)


def test_an_attribute_of_its_own_column_still_compiles():
    assert parse_mapping(GOOD).attributes == {"band": "ct_band"}
