"""The worker's directory: reloaded at once, never rolled back, never used past expiry (item 5)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from broker._directory_watch import DirectoryWatch
from broker._errors import DirectoryNotUsable
from consent import (
    SerialStore,
    build_dev_federation,
    generate_signing_key,
    load_private_key,
    public_key_b64,
    sign_directory,
)
from tests.broker.test_partition import FROM, NOW, TO


@pytest.fixture
def federation(tmp_path):
    return build_dev_federation(tmp_path / "fed", councils=[FROM, TO], now=NOW)


def _publish(federation, serial: int, *, rekey: str | None = None, add_council: str | None = None,
             document: dict | None = None) -> dict:  # fmt: skip
    """Re-sign the directory as the authority would, with a new serial and changes."""
    document = document or yaml.safe_load(federation.document_path.read_text())
    document["serial"] = serial
    for member in document["members"]:
        if member["id"] == rekey:  # the council's key was compromised: a new one replaces it
            member["signing_key"] = "ed25519:" + public_key_b64(generate_signing_key())
    if add_council:
        document["members"].append({"id": add_council, "kind": "council", "name": "New",
                                    "signing_key": "ed25519:"
                                    + public_key_b64(generate_signing_key())})  # fmt: skip
    authority = load_private_key(federation.keys[federation.authority].signing.private)
    text = yaml.safe_dump(document, sort_keys=False, width=100)
    federation.directory_path.write_bytes(sign_directory(text, authority))
    return document


def _watch(federation, tmp_path) -> DirectoryWatch:
    store = SerialStore(tmp_path / "serials.json")
    return DirectoryWatch.open(federation.directory_path, federation.trust_anchor, store, NOW)


def test_a_changed_directory_applies_a_revoked_key_at_once(federation, tmp_path):
    watch = _watch(federation, tmp_path)
    old_key = public_key_b64(watch.current.signing_key(FROM))
    assert watch.poll(NOW) is None, "nothing changed"
    reloaded = _publish(federation, 2, rekey=FROM) and watch.poll(NOW)
    assert reloaded is not None and reloaded.serial == 2 and not reloaded.restart_needed
    assert public_key_b64(watch.current.signing_key(FROM)) != old_key


def test_an_older_serial_is_refused_and_the_newer_stays(federation, tmp_path):
    original = yaml.safe_load(federation.document_path.read_text())
    watch = _watch(federation, tmp_path)
    _publish(federation, 2, rekey=FROM)
    watch.poll(NOW)
    revoked_in_2 = public_key_b64(watch.current.signing_key(FROM))
    _publish(federation, 1, document=original)  # serial 1 still has the old key
    with pytest.raises(DirectoryNotUsable) as caught:
        watch.poll(NOW)
    assert caught.value.reason == "directory-rolled-back"
    assert watch.current.serial == 2
    assert public_key_b64(watch.current.signing_key(FROM)) == revoked_in_2
    # A restarted worker remembers: the highest serial is persisted.
    with pytest.raises(DirectoryNotUsable) as again:
        _watch(federation, tmp_path)
    assert again.value.reason == "directory-rolled-back"


def test_a_new_council_or_agreement_is_reported_as_needing_a_restart(federation, tmp_path):
    watch = _watch(federation, tmp_path)
    document = yaml.safe_load(federation.document_path.read_text())
    removed = document["agreements"].pop()
    _publish(federation, 2, document=document)
    assert not watch.poll(NOW).restart_needed
    assert removed["id"] not in watch.current.agreements, "a withdrawn agreement stops at once"
    document["agreements"].append(removed)
    reloaded = _publish(federation, 3, document=document, add_council="E08000009") and watch.poll(
        NOW
    )
    assert reloaded is not None and reloaded.restart_needed
    assert any("E08000009" in r for r in reloaded.reasons), reloaded.reasons


def test_a_badly_signed_file_is_refused_and_the_current_directory_kept(federation, tmp_path):
    watch = _watch(federation, tmp_path)
    federation.directory_path.write_bytes(federation.directory_path.read_bytes()[:-20] + b"}")
    with pytest.raises(DirectoryNotUsable):
        watch.poll(NOW)
    assert watch.current.serial == 1


def test_past_expiry_the_worker_stops_deciding_and_says_why(federation, tmp_path, caplog):
    watch = _watch(federation, tmp_path)
    assert watch.usable(NOW) and watch.why == ""
    expired = watch.current.expires_at + timedelta(seconds=1)
    assert watch.expires_in(expired) < 0
    assert not watch.usable(expired)
    assert "expired" in watch.why and "not deciding" in watch.why
    assert "not deciding" in caplog.text
    _publish(federation, 2)
    # The authority issues a fresh directory: deciding resumes once it is loaded.
    renewed = yaml.safe_load(federation.document_path.read_text())
    renewed["issued_at"] = expired.isoformat()
    renewed["expires_at"] = (expired + timedelta(days=30)).isoformat()
    _publish(federation, 3, document=renewed)
    assert watch.poll(expired) is not None and watch.usable(expired)


def test_accepted_linkage_key_epochs_follow_the_directory(federation, tmp_path):
    """Retiring an epoch is a directory change, in force at once (issue 11, item 7)."""
    watch = _watch(federation, tmp_path)
    assert watch.current.accepted_epochs == frozenset({1})
    document = yaml.safe_load(federation.document_path.read_text())
    document["key_epoch"], document["accepted_epochs"] = 2, [2]
    reloaded = _publish(federation, 2, document=document) and watch.poll(NOW)
    assert reloaded is not None and watch.current.accepted_epochs == frozenset({2})


def test_consent_for_an_agreement_added_before_the_restart_is_admitted(federation, tmp_path):
    """Attack (a careless roll-out): the authority adds an agreement; the workers restart later.

    Councils' connectors take the new directory up and publish residents'
    objections to the new agreement at once. The worker checked consent scopes
    against only the agreements it serves until its restart, so each objection
    was refused as ``unknown-scope`` and lost: after the restart the agreement
    disclosed residents who had objected to it. A scope the signed directory in
    force names is admitted; serving the agreement still waits for the restart.
    """
    from dataclasses import replace

    from broker._admission import AdmissionPolicy, admit
    from consent import seal_envelope
    from schemas import Codec, ConsentState, SignatureDomain
    from tests.broker.test_partition import _consent

    watch = _watch(federation, tmp_path)
    document = yaml.safe_load(federation.document_path.read_text())
    added = {**document["agreements"][0], "id": "gm-added-later", "purpose": "added-later"}
    document["agreements"].append(added)
    reloaded = _publish(federation, 2, document=document) and watch.poll(NOW)
    assert reloaded is not None and reloaded.restart_needed
    assert "gm-added-later" not in watch.current.agreements, "served only after the restart"
    codec = Codec()
    for scope in ("gm-added-later", "purpose:added-later"):
        record = replace(_consent(federation, ConsentState.OBJECTED, scope), published_at=NOW)
        raw = seal_envelope(SignatureDomain.CONSENT, record, federation.signing_key(FROM), FROM,
                            codec=codec)  # fmt: skip
        admitted = admit(raw, topic=f"fed.consent.{FROM}", directory=watch.current,
                         scopes=watch.consent_scopes, codec=codec, now=NOW,
                         policy=AdmissionPolicy())  # fmt: skip
        assert admitted == record


def test_a_recipient_added_to_a_served_agreement_waits_for_the_restart(federation, tmp_path):
    """Attack (a roll-out again): an agreement is changed to add a new service as recipient.

    The worker served the changed agreement at once, but has no notification
    topic for a service it did not start with: every match under the agreement
    then failed on the missing topic and was quarantined, the event with it (its
    sighting never kept, its decisions for the existing recipients never made).
    A changed agreement is served at once only as far as it narrows.
    """
    from consent import generate_sealing_key

    watch = _watch(federation, tmp_path)
    document = yaml.safe_load(federation.document_path.read_text())
    agreement = document["agreements"][0]
    before = set(watch.current.agreements[agreement["id"]].recipients)
    document["members"].append({
        "id": f"{FROM}.newservice", "kind": "service", "name": "New service", "council": FROM,
        "sealing_key": "x25519:" + public_key_b64(generate_sealing_key().public_key()),
    })  # fmt: skip
    agreement["recipients"] = [*agreement["recipients"], f"{FROM}.newservice"]
    reloaded = _publish(federation, 2, document=document) and watch.poll(NOW)
    assert reloaded is not None and reloaded.restart_needed
    assert set(watch.current.agreements[agreement["id"]].recipients) == before
    # narrowing applies at once
    agreement["recipients"] = sorted(before)[:1]
    assert _publish(federation, 3, document=document) and watch.poll(NOW)
    assert set(watch.current.agreements[agreement["id"]].recipients) == set(sorted(before)[:1])
