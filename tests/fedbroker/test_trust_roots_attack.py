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


def test_directory_sign_that_fails_midway_leaves_the_signed_directory_in_force_intact(
    federation, tmp_path
):
    """The disk fills while the authority re-signs over the live file: the directory every
    process loads at its next start must still be the old, whole, signed one, not a
    truncated file that would lock the whole federation out."""
    import os
    import resource
    import signal
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    live = tmp_path / "directory.signed"
    live.write_bytes(federation.directory_path.read_bytes())
    before = live.read_bytes()
    limit = len(before) // 2

    def small_disk() -> None:  # writes past ``limit`` bytes fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        [sys.executable, "-c", "from fedbroker.cli import main; main()", "directory", "sign",
         "--key", str(federation.keys["gmca"].signing.private),
         "--in", str(federation.document_path), "--out", str(live)],
        capture_output=True, text=True, timeout=120, preexec_fn=small_disk,
        env={**os.environ, "PYTHONPATH": str(repo), "PYTHONDONTWRITEBYTECODE": "1"}, cwd=repo,
    )  # fmt: skip
    assert done.returncode != 0, "the write should have failed"
    assert live.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".directory.signed")]


def test_a_broker_key_file_given_beside_a_directory_is_refused_not_preferred(federation):
    """``audit verify --directory d --trust-anchor a --broker-key old.pub`` trusted the
    loose key file and silently skipped the signed directory, its rollback check and its
    revocations: the auditor believed the directory was the root of trust."""
    from fedbroker._errors import CommandError
    from fedbroker.cli._broker_key import load_broker_key

    other = federation.keys["E08000001"].signing.public
    with pytest.raises(CommandError, match="not both"):
        load_broker_key(federation.directory_path, federation.trust_anchor, other)
    with pytest.raises(CommandError, match="not both"):
        load_broker_key(None, federation.trust_anchor, other)


def test_directory_acls_refuses_a_directory_older_than_one_it_accepted(
    federation, tmp_path, monkeypatch
):
    """Serial 2 removed a council (its key leaked); ``directory acls --apply`` on the old
    serial 1 file, still valid for weeks, would grant the removed council its write rights
    back. The command keeps the serials it accepted, as ``audit verify`` does."""
    import yaml

    from consent import DirectoryRolledBack, sign_directory

    monkeypatch.setenv("FEDBROKER_DIRECTORY_SERIALS", str(tmp_path / "serials.json"))
    document = yaml.safe_load(federation.document_path.read_text())
    document["serial"] = 2
    newer = tmp_path / "directory-2.signed"
    newer.write_bytes(sign_directory(yaml.safe_dump(document), federation.signing_key("gmca")))

    def acls(path):
        args = ["directory", "acls", str(path), "--trust-anchor", str(federation.trust_anchor)]
        return CliRunner().invoke(cli, args, catch_exceptions=False, standalone_mode=False)

    assert acls(newer).exit_code == 0
    with pytest.raises(DirectoryRolledBack):
        acls(federation.directory_path)
