"""The directory attacked by a careless authority (attack round 3).

It failed on the code before its fix: a directory that listed one council's
signing key under another council too (a pasted line) was accepted, so the
one private key could publish as both councils.
"""

from __future__ import annotations

import pytest
import yaml

from consent import DirectoryInvalid, parse_directory


def _members(federation):
    doc = yaml.safe_load(federation.document_path.read_text())
    by_id = {m["id"]: m for m in doc["members"]}
    return doc, by_id


def test_the_dev_directory_shares_no_key(federation):
    doc, _ = _members(federation)
    parse_directory(yaml.safe_dump(doc, sort_keys=False))  # no problem listed


@pytest.mark.parametrize(
    ("owner", "copy", "key"),
    [
        ("E08000003", "E08000006", "signing_key"),  # a council's key pasted under another
        ("E08000003", "broker", "signing_key"),  # a council that could sign as the broker
        ("E08000009.revenues", "E08000009.electoral-registration", "sealing_key"),
    ],
)
def test_two_members_under_one_key_are_refused(federation, owner, copy, key):
    doc, by_id = _members(federation)
    by_id[copy][key] = by_id[owner][key]
    with pytest.raises(DirectoryInvalid) as caught:
        parse_directory(yaml.safe_dump(doc, sort_keys=False))
    message = str(caught.value)
    assert f"share one {key}" in message
    assert f"'{owner}'" in message and f"'{copy}'" in message
