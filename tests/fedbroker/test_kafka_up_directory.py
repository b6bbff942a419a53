"""``kafka up --secure --directory``: whose directory it trusts, and which serial.

``kafka up`` provisions credentials and ACLs from the directory, so the directory
decides who may read and write what. No node is started here: the cluster is
replaced by a stand-in that records whether ``up`` got as far as starting one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from consent import DevFederation, build_dev_federation, sign_directory
from fedbroker.cli import cli
from fedbroker.cli._state_files import SERIALS_ENV


@dataclass
class _Started:
    clusters: list[int] = field(default_factory=list)


@pytest.fixture
def started(monkeypatch, tmp_path) -> _Started:
    record = _Started()

    class StandIn:
        def __init__(self, brokers: int, port: int, *args: object, **kwargs: object) -> None:
            self.pki = type("Pki", (), {"ca_file": tmp_path / "no-ca", "folder": tmp_path})()

        def up(self, *, fresh: bool) -> str:
            record.clusters.append(1)
            return "127.0.0.1:1"

    monkeypatch.setattr("fedbroker.cli._kafka.KafkaCluster", StandIn)
    monkeypatch.setattr("fedbroker.cli._kafka.provision", lambda *args: 0)
    return record


def _up(tmp_path: Path, *args: str):
    env = {"FEDBROKER_HOME": str(tmp_path / "home"), SERIALS_ENV: str(tmp_path / "serials.json")}
    return CliRunner().invoke(cli, ["kafka", "up", "--secure", "--port", "1", *args], env=env)


def _resigned(federation: DevFederation, serial: int, folder: Path) -> Path:
    document = yaml.safe_load(federation.document_path.read_text())
    document["serial"] = serial
    path = folder / f"directory-{serial}.signed"
    key = federation.signing_key(federation.authority)
    path.write_bytes(sign_directory(yaml.safe_dump(document, sort_keys=False), key))
    return path


def test_the_trust_anchor_is_never_taken_from_beside_the_directory(tmp_path, started):
    """Attack: whoever can write the folder a directory is handed over in can put a
    directory signed by their own key there, with that key as ``keys/gmca.signing.pub``
    beside it. ``up`` trusted the key it found there, and issued credentials and set
    ACLs for the members the forger listed. The anchor must be given."""
    forger = build_dev_federation(tmp_path / "handed-over", councils=["E08000003"])
    assert (forger.directory_path.parent / "keys" / "gmca.signing.pub").exists()
    result = _up(tmp_path, "--directory", str(forger.directory_path))
    assert result.exit_code != 0
    assert "--trust-anchor" in str(result.exception)
    assert started.clusters == []


def test_a_directory_older_than_one_accepted_is_refused_before_any_node_starts(tmp_path, started):
    """A rolled-back directory (an older serial, still within its dates) would give a
    removed member's credentials and ACLs back: ``up`` kept no record of serials."""
    federation = build_dev_federation(tmp_path / "fed", councils=["E08000003"])
    anchor = str(federation.trust_anchor)
    newer = _resigned(federation, 2, tmp_path)
    accepted = _up(tmp_path, "--directory", str(newer), "--trust-anchor", anchor)
    assert accepted.exit_code == 0, accepted.output
    assert started.clusters == [1]
    rolled_back = _up(tmp_path, "--directory", str(federation.directory_path),
                      "--trust-anchor", anchor)  # fmt: skip
    assert rolled_back.exit_code != 0
    assert getattr(rolled_back.exception, "reason", None) == "directory-rolled-back"
    assert started.clusters == [1]  # nothing started for the older one
    again = _up(tmp_path, "--directory", str(newer), "--trust-anchor", anchor)
    assert again.exit_code == 0, again.output  # the same serial again is fine
