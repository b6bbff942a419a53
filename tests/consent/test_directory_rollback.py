"""A revoked key stays revoked: serials persist across restarts, the directory reloads in place."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from consent import (
    DirectoryExpired,
    DirectoryInvalid,
    DirectoryRolledBack,
    DirectoryWatcher,
    SerialStore,
    SignatureInvalid,
    directory_expires_in,
    generate_signing_key,
    public_key_b64,
    sign_directory,
    verify_directory,
    verify_signature,
)
from tests.consent.conftest import T0

COUNCIL = "E08000006"


def signed(federation, **changes) -> bytes:
    """The federation's directory with ``changes`` to its document, signed by the authority."""
    doc = yaml.safe_load(federation.document_path.read_text())
    for key, value in changes.items():
        doc[key] = value(doc) if callable(value) else value
    return sign_directory(yaml.safe_dump(doc, sort_keys=False), federation.signing_key("gmca"))


def with_council_key(key):
    def change(doc):
        for member in doc["members"]:
            if member["id"] == COUNCIL:
                member["signing_key"] = "ed25519:" + public_key_b64(key)
        return doc["members"]

    return change


@pytest.fixture
def serials(federation):
    """Serial 1 (the council's original key K1) and serial 2 (K1 revoked, K2 in its place)."""
    k2 = generate_signing_key()
    return signed(federation), signed(federation, serial=2, members=with_council_key(k2)), k2


def test_a_rolled_back_directory_is_refused_after_a_restart(federation, serials, tmp_path):
    serial1, serial2, _ = serials
    path, store_path = tmp_path / "directory.signed", tmp_path / "state" / "serials.json"
    path.write_bytes(serial2)
    first = DirectoryWatcher(
        path, trust_anchor=federation.trust_anchor, serial_store=SerialStore(store_path), now=T0
    )
    assert first.current.serial == 2
    # the process restarts; meanwhile someone put serial 1 back
    path.write_bytes(serial1)
    with pytest.raises(DirectoryRolledBack) as caught:
        DirectoryWatcher(
            path, trust_anchor=federation.trust_anchor, serial_store=SerialStore(store_path), now=T0
        )
    assert caught.value.reason == "directory-rolled-back"
    assert isinstance(caught.value, DirectoryInvalid)
    assert (
        SerialStore(store_path).highest(
            verify_directory(serial1, trust_anchor=federation.trust_anchor, now=T0)
        )
        == 2
    )
    # serial 1 on its own still verifies: only the persisted serial stops it
    assert verify_directory(serial1, trust_anchor=federation.trust_anchor, now=T0).serial == 1


RESTARTED = """
import sys
from consent import DirectoryWatcher, SerialStore
from tests.consent.conftest import T0
try:
    watcher = DirectoryWatcher(
        sys.argv[1], trust_anchor=sys.argv[2], serial_store=SerialStore(sys.argv[3]), now=T0
    )
except Exception as exc:
    print(getattr(exc, "reason", type(exc).__name__))
else:
    print("serial", watcher.current.serial)
"""


def test_a_rollback_is_refused_by_a_new_process(federation, serials, tmp_path):
    """Two real processes: the second starts on serial 1 after the first accepted serial 2."""
    import os
    import subprocess
    import sys

    serial1, serial2, _ = serials
    path, store = tmp_path / "directory.signed", tmp_path / "state" / "serials.json"

    def start() -> str:
        argv = [
            sys.executable,
            "-c",
            RESTARTED,
            str(path),
            str(federation.trust_anchor),
            str(store),
        ]
        repo = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": repo}
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=repo, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    path.write_bytes(serial2)
    assert start() == "serial 2"
    path.write_bytes(serial1)
    assert start() == "directory-rolled-back"
    assert store.exists()


def test_the_same_serial_with_other_content_is_refused(federation, tmp_path):
    store = SerialStore(tmp_path / "serials.json")
    store.accept(verify_directory(signed(federation), trust_anchor=federation.trust_anchor, now=T0))
    store.accept(verify_directory(signed(federation), trust_anchor=federation.trust_anchor, now=T0))
    other = signed(federation, members=with_council_key(generate_signing_key()))
    with pytest.raises(DirectoryRolledBack) as caught:
        store.accept(verify_directory(other, trust_anchor=federation.trust_anchor, now=T0))
    assert caught.value.reason == "directory-serial-reused"


def test_a_revoked_key_stays_revoked_in_a_running_process(federation, serials, tmp_path):
    serial1, serial2, k2 = serials
    path = tmp_path / "directory.signed"
    path.write_bytes(serial1)
    watcher = DirectoryWatcher(
        path,
        trust_anchor=federation.trust_anchor,
        serial_store=SerialStore(tmp_path / "serials.json"),
        now=T0,
    )
    k1 = federation.signing_key(COUNCIL)
    message = b"an event body"
    verify_signature(watcher.current.signing_key(COUNCIL), message, k1.sign(message))
    assert watcher.poll(T0) is None  # unchanged

    path.write_bytes(serial2)
    change = watcher.poll(T0)
    assert change is not None and change.current.serial == 2 and not change.restart_required
    with pytest.raises(SignatureInvalid):  # the revocation took effect at once
        verify_signature(watcher.current.signing_key(COUNCIL), message, k1.sign(message))
    verify_signature(watcher.current.signing_key(COUNCIL), message, k2.sign(message))

    path.write_bytes(serial1)  # rolled back underneath the running process
    with pytest.raises(DirectoryRolledBack):
        watcher.poll(T0)
    assert watcher.poll(T0) is None  # reported once, not at every poll
    assert watcher.current.serial == 2
    with pytest.raises(SignatureInvalid):
        verify_signature(watcher.current.signing_key(COUNCIL), message, k1.sign(message))


def test_a_tampered_reload_is_refused_and_the_current_directory_kept(federation, tmp_path):
    path = tmp_path / "directory.signed"
    path.write_bytes(signed(federation))
    watcher = DirectoryWatcher(
        path, trust_anchor=federation.trust_anchor, serial_store=None, now=T0
    )
    envelope = json.loads(signed(federation, serial=5))
    envelope["document"] = envelope["document"].replace(COUNCIL, "E08000099", 1)
    path.write_text(json.dumps(envelope))
    with pytest.raises(DirectoryInvalid) as caught:
        watcher.poll(T0)
    assert caught.value.reason == "directory-signature-invalid"
    assert watcher.current.serial == 1
    path.write_bytes(signed(federation))  # put back: nothing changed after all
    assert watcher.poll(T0) is None and watcher.current.serial == 1


def test_validity_is_exposed_and_enforced(federation, tmp_path):
    path = tmp_path / "directory.signed"
    path.write_bytes(signed(federation))
    watcher = DirectoryWatcher(
        path, trust_anchor=federation.trust_anchor, serial_store=SerialStore(tmp_path / "s"), now=T0
    )
    assert watcher.expires_in(T0) == timedelta(days=30).total_seconds()
    assert directory_expires_in(watcher.current, T0 + timedelta(days=31)) == -86400
    watcher.check_current(T0)
    with pytest.raises(DirectoryExpired):
        watcher.check_current(T0 + timedelta(days=30))
    # a reissue that shortens validity takes effect at once
    expires = (T0 + timedelta(days=2)).isoformat()
    path.write_bytes(signed(federation, serial=2, expires_at=expires))
    assert watcher.poll(T0) is not None
    with pytest.raises(DirectoryExpired):
        watcher.check_current(T0 + timedelta(days=3))


def test_a_change_that_adds_councils_or_agreements_needs_a_restart(federation, tmp_path):
    path = tmp_path / "directory.signed"
    doc = yaml.safe_load(federation.document_path.read_text())
    agreements = doc["agreements"]
    path.write_bytes(signed(federation, agreements=agreements[:1]))
    watcher = DirectoryWatcher(
        path, trust_anchor=federation.trust_anchor, serial_store=SerialStore(tmp_path / "s"), now=T0
    )

    def add_council(d):
        d["members"].append(
            {
                "id": "E08000010",
                "kind": "council",
                "name": "Wigan",
                "signing_key": "ed25519:" + public_key_b64(generate_signing_key()),
            }
        )
        return d["members"]

    path.write_bytes(signed(federation, serial=2, members=add_council, agreements=agreements))
    change = watcher.poll(T0)
    assert change is not None and change.restart_required
    assert "council added: E08000010" in change.needs_restart
    assert any(r.startswith("agreement added: ") for r in change.needs_restart)
    assert watcher.current.serial == 2  # keys and validity are taken up all the same


def test_an_unreadable_serial_store_is_an_error_not_a_fresh_start(federation, tmp_path):
    store_path = tmp_path / "serials.json"
    store_path.write_text("{")
    directory = verify_directory(signed(federation), trust_anchor=federation.trust_anchor, now=T0)
    with pytest.raises(DirectoryInvalid) as caught:
        SerialStore(store_path).accept(directory)
    assert caught.value.reason == "serial-store-invalid"
    for malformed in (
        {"format": "fedbroker-directory-serials/1", "authorities": {"k": {"serial": "2"}}},
        {"format": "fedbroker-directory-serials/1", "authorities": []},
        {"format": "other", "authorities": {}},
    ):
        store_path.write_text(json.dumps(malformed))
        with pytest.raises(DirectoryInvalid) as caught:
            SerialStore(store_path).highest(directory)
        assert caught.value.reason == "serial-store-invalid"
    assert SerialStore(tmp_path / "none.json").highest(directory) is None


def test_serials_are_kept_per_authority_key(tmp_path, federation_factory):
    store = SerialStore(tmp_path / "serials.json")
    a, b = federation_factory(), federation_factory()
    da = verify_directory(signed(a, serial=7), trust_anchor=a.trust_anchor, now=T0)
    store.accept(da)
    db = verify_directory(signed(b), trust_anchor=b.trust_anchor, now=T0)
    store.accept(db)  # another authority's serial 1 is not a rollback of serial 7
    assert store.highest(da) == 7 and store.highest(db) == 1
