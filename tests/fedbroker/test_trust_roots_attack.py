"""The commands' own keys against the signed directory (pure tier: no Kafka is reached)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from consent import build_dev_federation
from fedbroker.cli import cli
from schemas import FedbrokerError

SERVICES = {"svc-a": "E08000001", "svc-b": "E08000001"}


@pytest.fixture
def federation(tmp_path):
    return build_dev_federation(tmp_path / "fed", councils=["E08000001"], services=SERVICES)


@pytest.mark.parametrize(
    ("service", "key_of", "reason"),
    [("svc-a", "svc-b", "service-key-mismatch"), ("svc-x", "svc-a", "unknown-member")],
)
def test_subscribe_refuses_a_key_or_service_the_directory_does_not_list(
    federation, tmp_path, monkeypatch, service, key_of, reason
):
    """``--key`` of another service (a careless copy), or a ``--service`` not in the
    directory: every notification would fail to open and go to the dead letters, each
    committed as handled. The command must refuse before it reads a single one."""
    import fedbroker.cli._subscribe as command

    def reached(*args, **kwargs):
        raise AssertionError("the subscriber started before its key was checked")

    monkeypatch.setattr(command, "Subscriber", reached)
    key = federation.keys[key_of].sealing
    assert key is not None
    args = [
        "subscribe", "--bootstrap", "127.0.0.1:9", "--service", service,
        "--key", str(key.private), "--directory", str(federation.directory_path),
        "--trust-anchor", str(federation.trust_anchor), "--state", str(tmp_path / "state"),
    ]  # fmt: skip
    with pytest.raises(FedbrokerError) as caught:
        CliRunner().invoke(cli, args, catch_exceptions=False, standalone_mode=False)
    assert caught.value.reason == reason
