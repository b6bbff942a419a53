"""A connector refuses at start what would have the broker refuse every event it sends.

A careless admin gives a council's connector another council's signing key, its
own key from before a rotation, or a new linkage key before the directory accepts
its epoch: the connector would run, sign and publish, and the broker would refuse
every event (``wrong-council``, ``key-epoch``) while nothing here said why.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from connectors import (
    KeyEpochNotAccepted,
    SigningKeyMismatch,
    SourceConfig,
    generate_linkage_key,
    open_connector,
)
from consent import write_secret_file
from tests.connectors.conftest import COUNCILS, offline_config


def _config(tmp_path, federation, synthetic, linkage_keys):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source = SourceConfig("revenues", "csv", synthetic.mapping, path=inbox)
    return offline_config(federation, linkage_keys, tmp_path / "outbox.sqlite", (source,))


def test_another_councils_signing_key_is_refused_at_start(
    tmp_path, federation, synthetic, linkage_keys
):
    config = _config(tmp_path, federation, synthetic, linkage_keys)
    others = federation.keys[COUNCILS[1]].signing
    assert others is not None
    with pytest.raises(SigningKeyMismatch) as refused:
        open_connector(replace(config, signing_key=others.private))
    assert refused.value.reason == "signing-key-mismatch"
    assert COUNCILS[0] in str(refused.value)


def test_a_linkage_key_of_an_epoch_the_directory_does_not_accept_is_refused_at_start(
    tmp_path, federation, synthetic, linkage_keys
):
    config = _config(tmp_path, federation, synthetic, linkage_keys)
    newer = write_secret_file(
        tmp_path / "linkage-keys.json",
        json.dumps({"1": generate_linkage_key(1).secret.hex(),
                    "2": generate_linkage_key(2).secret.hex()}).encode(),
    )  # fmt: skip
    with pytest.raises(KeyEpochNotAccepted) as refused:
        open_connector(replace(config, linkage_keys=newer))
    assert refused.value.reason == "key-epoch-not-in-directory"
    assert "epoch 2" in str(refused.value)


def test_the_councils_own_keys_open(tmp_path: Path, federation, synthetic, linkage_keys):
    connector = open_connector(_config(tmp_path, federation, synthetic, linkage_keys))
    connector.close()
