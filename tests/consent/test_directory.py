"""The signed directory: loads when signed and current, refused otherwise, typed."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import yaml

from consent import (
    DirectoryExpired,
    DirectoryInvalid,
    MemberKind,
    generate_signing_key,
    load_directory,
    parse_directory,
    public_key_pem,
    sign_directory,
    verify_directory,
)
from tests.consent.conftest import COUNCILS, T0


def test_dev_federation_loads_with_members_keys_topics_and_agreements(federation):
    directory = federation.load(T0)
    assert [m.member_id for m in directory.councils] == list(COUNCILS)
    assert directory.broker.member_id == "broker"
    assert {m.member_id for m in directory.services_of("E08000009")} == {
        "E08000009.revenues",
        "E08000009.electoral-registration",
    }
    assert set(directory.agreements) == {
        "gm-cross-boundary-move",
        "gm-single-person-discount-duplicate",
        "gm-multiple-disadvantage",
    }
    # agreements were narrowed to the councils present
    assert directory.agreements["gm-cross-boundary-move"].controllers == set(COUNCILS)
    key = federation.signing_key("E08000006")
    assert directory.signing_key("E08000006").public_bytes_raw() == (
        key.public_key().public_bytes_raw()
    )
    sealing = federation.sealing_key("E08000009.revenues")
    assert directory.sealing_key("E08000009.revenues").public_bytes_raw() == (
        sealing.public_key().public_bytes_raw()
    )
    assert directory.of_kind(MemberKind.AUTHORITY)[0].member_id == "gmca"
    assert directory.agreement("nope") is None


def test_unknown_member_and_missing_keys_are_typed(federation):
    directory = federation.load(T0)
    with pytest.raises(DirectoryInvalid) as caught:
        directory.member("E08000099")
    assert caught.value.reason == "unknown-member"
    with pytest.raises(DirectoryInvalid):
        directory.sealing_key("E08000006")
    with pytest.raises(DirectoryInvalid):
        directory.signing_key("E08000009.revenues")


def test_unsigned_directory_is_refused(federation):
    with pytest.raises(DirectoryInvalid) as caught:
        load_directory(federation.document_path, trust_anchor=federation.trust_anchor, now=T0)
    assert caught.value.reason == "directory-unsigned"
    with pytest.raises(DirectoryInvalid) as caught:
        verify_directory(
            b'{"format": "fedbroker-signed-directory/1"}',
            trust_anchor=federation.trust_anchor,
            now=T0,
        )
    assert caught.value.reason == "directory-unsigned"


def test_wrong_trust_anchor_is_refused(federation):
    other = public_key_pem(generate_signing_key())
    with pytest.raises(DirectoryInvalid) as caught:
        load_directory(federation.directory_path, trust_anchor=other, now=T0)
    assert caught.value.reason == "directory-signature-invalid"


def test_altered_document_is_refused(federation):
    envelope = json.loads(federation.directory_path.read_bytes())
    envelope["document"] = envelope["document"].replace("E08000009", "E08000099", 1)
    with pytest.raises(DirectoryInvalid) as caught:
        verify_directory(
            json.dumps(envelope).encode(), trust_anchor=federation.trust_anchor, now=T0
        )
    assert caught.value.reason == "directory-signature-invalid"


def test_expired_and_not_yet_valid_are_refused(federation):
    with pytest.raises(DirectoryExpired) as caught:
        federation.load(T0 + timedelta(days=31))
    assert caught.value.reason == "directory-expired"
    with pytest.raises(DirectoryExpired) as caught:
        federation.load(T0 - timedelta(minutes=1))
    assert caught.value.reason == "directory-not-yet-valid"
    assert isinstance(caught.value, DirectoryInvalid)


def test_signing_with_a_key_other_than_the_authoritys_is_refused(federation):
    text = federation.document_path.read_text()
    with pytest.raises(DirectoryInvalid) as caught:
        sign_directory(text, generate_signing_key())
    assert caught.value.reason == "directory-signer-mismatch"


def test_a_directory_whose_authority_key_differs_from_the_anchor_is_refused(federation):
    """Signed by the anchor but listing another authority key: inconsistent, refused."""
    import base64

    from consent import public_key_b64, sign_detached
    from consent._directory_signing import SIGNED_DIRECTORY_FORMAT
    from schemas import SignatureDomain

    doc = yaml.safe_load(federation.document_path.read_text())
    doc["members"][0]["signing_key"] = "ed25519:" + public_key_b64(generate_signing_key())
    text = yaml.safe_dump(doc, sort_keys=False)
    signature = sign_detached(
        federation.signing_key("gmca"), SignatureDomain.DIRECTORY, text.encode()
    )
    envelope = {
        "format": SIGNED_DIRECTORY_FORMAT,
        "document": text,
        "signature": base64.b64encode(signature).decode(),
    }
    with pytest.raises(DirectoryInvalid) as caught:
        verify_directory(
            json.dumps(envelope).encode(), trust_anchor=federation.trust_anchor, now=T0
        )
    assert caught.value.reason == "directory-signer-mismatch"


def test_content_problems_are_listed_with_lines(federation):
    doc = yaml.safe_load(federation.document_path.read_text())
    doc["members"].append({"id": "E08000006", "kind": "council", "name": "dup"})
    doc["members"].append({"id": "x", "kind": "planet"})
    doc["agreements"][0]["recipients"].append("nobody")
    with pytest.raises(DirectoryInvalid) as caught:
        parse_directory(yaml.safe_dump(doc, sort_keys=False))
    message = str(caught.value)
    assert "member 'E08000006' is listed twice" in message
    assert "a council needs a signing_key" in message
    assert "unknown kind 'planet'" in message
    assert "recipient 'nobody' is not a service in the directory" in message
    assert ":line " in message


def test_structural_problems():
    with pytest.raises(DirectoryInvalid):
        parse_directory("")
    with pytest.raises(DirectoryInvalid):
        parse_directory("a: [")
    with pytest.raises(DirectoryInvalid) as caught:
        parse_directory(
            "format: other\nauthority: gmca\nissued_at: 2026-01-02T00:00:00Z\n"
            "expires_at: 2026-01-01T00:00:00Z\nmembers: {}\n"
        )
    message = str(caught.value)
    assert "format must be" in message
    assert "'expires_at' must be after 'issued_at'" in message
    assert "'members' must be a list" in message


def _doc(federation):
    return yaml.safe_load(federation.document_path.read_text())


def test_member_and_top_level_problems(federation):
    doc = _doc(federation)
    doc["serial"] = "one"
    doc["issued_at"] = "2026-06-01T00:00:00"
    doc["authority"] = "broker"
    doc["members"].append("not a mapping")
    doc["members"].append(
        {"id": "svc", "kind": "service", "council": "E08000099", "sealing_key": "x25519:AAAA"}
    )
    doc["members"].append(
        {"id": "broker2", "kind": "broker", "signing_key": doc["members"][1]["signing_key"]}
    )
    doc["agreements"].append(doc["agreements"][0])
    with pytest.raises(DirectoryInvalid) as caught:
        parse_directory(yaml.safe_dump(doc, sort_keys=False), source="d.yaml")
    message = str(caught.value)
    for expected in (
        "'serial' must be a whole number",
        "'issued_at' needs a timezone",
        "member 'broker' is not of kind authority",
        "member must be a mapping",
        "member 'svc': sealing_key: malformed x25519 base64 public key",
        "service 'svc': unknown council",
        "exactly one broker",
        "is listed twice",
    ):
        assert expected in message, expected
    doc = _doc(federation)
    doc["members"][2]["topics"] = {"events": "custom.events"}
    doc["authority"] = "nobody"
    doc["agreements"] = {"not": "a list"}
    doc["issued_at"] = "yesterday"
    with pytest.raises(DirectoryInvalid) as caught:
        parse_directory(yaml.safe_dump(doc, sort_keys=False))
    message = str(caught.value)
    assert "authority 'nobody' is not a member" in message
    assert "'agreements' must be a list" in message
    assert "'issued_at' must be an ISO 8601 datetime" in message


def test_a_topics_override_is_refused_not_silently_ignored(federation):
    """A careless clerk's ``topics: {events: custom.events}`` was parsed and kept, but
    no connector, broker worker, ACL or topic provisioning ever read it (every topic
    name derives from the prefix and the member id): the council believed its events
    went to ``custom.events`` while everything ran on ``fed.events.<id>``. Refused,
    saying why and what the names are."""
    doc = _doc(federation)
    council = next(m for m in doc["members"] if m["kind"] == "council")
    council["topics"] = {"events": "custom.events"}
    with pytest.raises(DirectoryInvalid) as caught:
        parse_directory(yaml.safe_dump(doc, sort_keys=False))
    message = str(caught.value)
    assert f"member '{council['id']}': 'topics' cannot be set" in message
    assert "<prefix>.events.<id>" in message
    assert "unknown field 'topics'" not in message  # one problem, said once


def test_unreadable_directory_file(tmp_path, federation):
    with pytest.raises(DirectoryInvalid):
        load_directory(tmp_path / "none", trust_anchor=federation.trust_anchor, now=T0)
    with pytest.raises(DirectoryInvalid) as caught:
        verify_directory(b"\xff\xfe", trust_anchor=federation.trust_anchor, now=T0)
    assert caught.value.reason == "directory-unsigned"
    from consent import KeyInvalid, generate_sealing_key

    with pytest.raises(KeyInvalid):
        verify_directory(b"{}", trust_anchor=generate_sealing_key().public_key(), now=T0)


def test_routing_and_agreements_for_an_event(federation):
    from consent import agreements_for, route
    from schemas import EventType

    directory = federation.load(T0)
    found = agreements_for(directory, EventType.ADDRESS_CHANGE, "E08000006")
    assert [a.agreement_id for a in found] == ["gm-cross-boundary-move"]
    assert agreements_for(directory, "rent-arrears", "E08000099") == ()
    assert agreements_for(directory, "no-such-type", "E08000006") == ()
    move = directory.agreement("gm-cross-boundary-move")
    assert route(
        move, directory, source_councils=["E08000006", "E08000009"], destination_council="E08000009"
    ) == ("E08000009.electoral-registration", "E08000009.revenues")
    assert route(move, directory, source_councils=["E08000006"]) == ()
    spd = directory.agreement("gm-single-person-discount-duplicate")
    assert route(spd, directory, source_councils=["E08000003", "E08000006"]) == (
        "E08000003.revenues",
        "E08000006.revenues",
    )
    families = directory.agreement("gm-multiple-disadvantage")
    assert route(families, directory, source_councils=[]) == ("gmca.supporting-families",)


def test_a_json_directory_document_is_accepted(federation):
    import json as _json

    directory = parse_directory(_json.dumps(_doc(federation), default=str))
    assert directory.broker.member_id == "broker"


# --- issue 11, item 7: inline keys only; accepted epochs and the floor are signed ----------


def test_a_key_given_as_a_file_path_is_refused(federation, tmp_path):
    """A path would let whoever writes that file swap a trusted key without re-signing."""
    doc = _doc(federation)
    council = next(m for m in doc["members"] if m["kind"] == "council")
    pem = tmp_path / "council.pub"
    pem.write_text(public_key_pem(generate_signing_key()))
    council["signing_key"] = str(pem)
    with pytest.raises(DirectoryInvalid) as caught:
        parse_directory(yaml.safe_dump(doc, sort_keys=False))
    assert f"member '{council['id']}': signing_key must be given inline" in str(caught.value)
    # the same key inline, as PEM text, is accepted
    council["signing_key"] = pem.read_text()
    assert parse_directory(yaml.safe_dump(doc, sort_keys=False)).member(council["id"])


def test_accepted_epochs_come_from_the_directory_and_default_to_the_current_one(federation):
    directory = federation.load(T0)
    assert directory.key_epoch == 1 and directory.accepted_epochs == frozenset({1})
    assert directory.federation_start is None
    assert directory.recorded_floor.year == 2020
    doc = _doc(federation)
    doc.update(key_epoch=3, accepted_epochs=[2, 3], federation_start="2026-04-01T00:00:00Z")
    parsed = parse_directory(yaml.safe_dump(doc, sort_keys=False))
    assert parsed.key_epoch == 3 and parsed.accepted_epochs == frozenset({2, 3})
    assert parsed.recorded_floor.isoformat() == "2026-04-01T00:00:00+00:00"
    doc.update(key_epoch=3)
    del doc["accepted_epochs"]
    assert parse_directory(yaml.safe_dump(doc, sort_keys=False)).accepted_epochs == {3}
    doc.update(key_epoch=0, accepted_epochs=[1, "x"])
    with pytest.raises(DirectoryInvalid) as caught:
        parse_directory(yaml.safe_dump(doc, sort_keys=False))
    message = str(caught.value)
    assert "'key_epoch' must be a positive whole number" in message
    assert "'accepted_epochs' items must be positive whole numbers" in message
    doc.update(key_epoch=4, accepted_epochs=[2, 3])
    with pytest.raises(DirectoryInvalid) as caught:
        parse_directory(yaml.safe_dump(doc, sort_keys=False))
    assert "'accepted_epochs' must include 'key_epoch'" in str(caught.value)
