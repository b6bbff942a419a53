"""Attacks on the federation's trust roots: the directory, its anchor and the serial store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from consent import (
    DirectoryExpired,
    DirectoryInvalid,
    DirectoryWatcher,
    SerialStore,
    SignatureInvalid,
    generate_signing_key,
    public_key_b64,
    verify_signature,
)
from tests.consent.conftest import T0
from tests.consent.test_directory_rollback import COUNCIL, signed, with_council_key


def test_a_revocation_signed_a_moment_ahead_of_the_local_clock_takes_effect_once_valid(
    federation, tmp_path
):
    """A directory issued seconds "in the future" (the authority's clock runs ahead) is
    refused as not yet valid; once its ``issued_at`` has passed it must be taken up, not
    stay refused until someone happens to change the file again."""
    path = tmp_path / "directory.signed"
    path.write_bytes(signed(federation))
    watcher = DirectoryWatcher(
        path,
        trust_anchor=federation.trust_anchor,
        serial_store=SerialStore(tmp_path / "serials.json"),
        now=T0,
    )
    k2 = generate_signing_key()
    issued = T0 + timedelta(seconds=5)
    path.write_bytes(
        signed(
            federation,
            serial=2,
            issued_at=issued.isoformat(),
            members=with_council_key(k2),
        )
    )
    with pytest.raises(DirectoryExpired) as caught:
        watcher.poll(T0)
    assert caught.value.reason == "directory-not-yet-valid"
    assert watcher.current.serial == 1
    assert watcher.poll(T0 + timedelta(seconds=1)) is None  # still early: reported once
    assert watcher.current.serial == 1

    change = watcher.poll(issued + timedelta(seconds=1))
    assert change is not None and change.current.serial == 2
    k1 = federation.signing_key(COUNCIL)
    with pytest.raises(SignatureInvalid):  # the old key is revoked
        verify_signature(watcher.current.signing_key(COUNCIL), b"m", k1.sign(b"m"))


def test_a_reload_refused_while_the_serial_store_was_unreadable_is_taken_up_once_repaired(
    federation, tmp_path
):
    path, store = tmp_path / "directory.signed", tmp_path / "serials.json"
    path.write_bytes(signed(federation))
    watcher = DirectoryWatcher(
        path, trust_anchor=federation.trust_anchor, serial_store=SerialStore(store), now=T0
    )
    good = store.read_bytes()
    store.write_text("{")  # a restore from backup under way, a full disk, ...
    path.write_bytes(signed(federation, serial=2))
    with pytest.raises(DirectoryInvalid) as caught:
        watcher.poll(T0)
    assert caught.value.reason == "serial-store-invalid"
    store.write_bytes(good)
    change = watcher.poll(T0)
    assert change is not None and watcher.current.serial == 2


def test_the_trust_anchor_is_pinned_when_the_watcher_starts(federation_factory, tmp_path):
    """Whoever can write the anchor file must not swap the federation's root of trust
    under a running process: with a new anchor, a directory of the attacker's own
    authority (its own serial count, so no rollback check stops it) would be taken up."""
    ours, theirs = federation_factory(), federation_factory()
    anchor, path = tmp_path / "anchor.pem", tmp_path / "directory.signed"
    anchor.write_bytes(ours.trust_anchor.read_bytes())
    path.write_bytes(signed(ours))
    watcher = DirectoryWatcher(
        path, trust_anchor=anchor, serial_store=SerialStore(tmp_path / "serials.json"), now=T0
    )
    anchor.write_bytes(theirs.trust_anchor.read_bytes())
    path.write_bytes(signed(theirs, serial=2))
    with pytest.raises(DirectoryInvalid) as caught:
        watcher.poll(T0)
    assert caught.value.reason == "directory-signature-invalid"
    assert watcher.current.serial == 1
    anchor.unlink()  # a careless clean-up of the anchor file does not stop reloads either
    path.write_bytes(signed(ours, serial=3))
    assert watcher.poll(T0) is not None and watcher.current.serial == 3


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("serial", "9" * 5000, "'serial' must be a whole number"),
        ("serial", str(2**63), "'serial' must be a whole number"),
        ("key_epoch", "9" * 5000, "'key_epoch' must be a positive whole number"),
        ("key_epoch", str(2**31), "'key_epoch' must be a positive whole number"),
        ("accepted_epochs", ["1", "9" * 5000], "'accepted_epochs' items must be positive"),
    ],
)
def test_oversized_serials_and_epochs_are_listed_problems_not_crashes(
    federation, field, value, message
):
    """A 5,000-digit serial raised a bare ValueError out of ``parse_directory`` (and so out
    of ``directory sign``); an epoch past Avro's ``int`` was accepted although no token
    can ever carry it, so no event would be admitted again."""
    import yaml

    from consent import parse_directory

    document = yaml.safe_load(federation.document_path.read_text())
    document[field] = value
    with pytest.raises(DirectoryInvalid) as caught:
        parse_directory(yaml.safe_dump(document, sort_keys=False))
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda env: {**env, "document": env["document"] + "\ud800"},  # a lone surrogate
        lambda env: {**env, "signature": "é" + env["signature"]},  # not ASCII base64
    ],
)
def test_a_tampered_envelope_is_a_typed_refusal_not_a_crash(federation, tmp_path, tamper):
    """Whoever can write the directory file could make every loading process (and the
    broker's reload) fail with a bare UnicodeEncodeError or ValueError: an internal error
    at start instead of ``directory-signature-invalid``."""
    import json

    from consent import verify_directory

    envelope = json.loads(signed(federation))
    data = json.dumps(tamper(envelope)).encode()
    with pytest.raises(DirectoryInvalid) as caught:
        verify_directory(data, trust_anchor=federation.trust_anchor, now=T0)
    assert caught.value.reason == "directory-signature-invalid"
    path = tmp_path / "directory.signed"
    path.write_bytes(signed(federation))
    watcher = DirectoryWatcher(
        path, trust_anchor=federation.trust_anchor, serial_store=None, now=T0
    )
    path.write_bytes(data)
    with pytest.raises(DirectoryInvalid):
        watcher.poll(T0)
    assert watcher.current.serial == 1


@pytest.mark.parametrize("data", [b"[" * 100_000, b'{"a":' * 100_000, b"\xff\xfe"])
def test_a_deeply_nested_or_undecodable_file_is_refused_as_unsigned(federation, data):
    """A file of 100,000 '[' made ``json.loads`` raise RecursionError out of
    ``verify_directory``: an untyped crash of every process that loads it."""
    from consent import verify_directory

    with pytest.raises(DirectoryInvalid) as caught:
        verify_directory(data, trust_anchor=federation.trust_anchor, now=T0)
    assert caught.value.reason == "directory-unsigned"


@pytest.mark.parametrize("text", ["[" * 1_500, "members: " + "[" * 1_500 + "]" * 1_500])
def test_deeply_nested_yaml_is_a_listed_problem_not_a_crash(text):
    """``directory sign`` and ``directory check-agreement`` read files people hand them:
    nesting deep enough made YAML's composer raise RecursionError (an internal error)."""
    from consent import AgreementInvalid, parse_agreement, parse_directory

    with pytest.raises(DirectoryInvalid):
        parse_directory(text)
    with pytest.raises(AgreementInvalid):
        parse_agreement(text)


def test_a_huge_directory_file_is_refused_without_being_read_whole(federation, tmp_path):
    """Whoever can write the directory file (or link it to /dev/zero) must not make every
    process, and the broker at each poll, read gigabytes into memory: the size is capped
    before anything is read, parsed or hashed."""
    from consent import MAX_DIRECTORY_BYTES, load_directory

    huge = tmp_path / "huge.signed"
    with huge.open("wb") as handle:
        handle.truncate(MAX_DIRECTORY_BYTES + 1)  # sparse: no disk is used
    with pytest.raises(DirectoryInvalid) as caught:
        load_directory(huge, trust_anchor=federation.trust_anchor, now=T0)
    assert caught.value.reason == "directory-too-large"
    path = tmp_path / "directory.signed"
    path.write_bytes(signed(federation))
    watcher = DirectoryWatcher(
        path, trust_anchor=federation.trust_anchor, serial_store=None, now=T0
    )
    path.unlink()
    path.symlink_to("/dev/zero")
    with pytest.raises(DirectoryInvalid) as caught:
        watcher.poll(T0)
    assert caught.value.reason == "directory-too-large"
    assert watcher.current.serial == 1


def test_loading_kafka_credentials_warns_about_a_key_or_password_others_can_read(tmp_path, caplog):
    """A party's Ed25519 key warns when group- or world-readable; its Kafka TLS key and
    password files did not, though anyone on the host could then log in to Kafka as the
    party (read a service's notification topic, write a council's)."""
    import logging

    from consent import KafkaSecurity

    files = {name: tmp_path / name for name in ("ca.pem", "cert.pem", "key.pem", "password")}
    for path in files.values():
        path.write_text("SECRET-CONTENT\n")
        path.chmod(0o600)
    files["ca.pem"].chmod(0o644)  # public: no warning
    files["key.pem"].chmod(0o644)
    files["password"].chmod(0o640)
    with caplog.at_level(logging.WARNING):
        KafkaSecurity.from_mapping(
            {"ca_file": "ca.pem", "cert_file": "cert.pem", "key_file": "key.pem",
             "key_password_file": "password"},
            base=tmp_path,
        )  # fmt: skip
    assert str(files["key.pem"]) in caplog.text and str(files["password"]) in caplog.text
    assert str(files["ca.pem"]) not in caplog.text
    assert "SECRET-CONTENT" not in caplog.text


def test_a_trust_anchor_file_others_can_write_is_warned_about(federation, tmp_path, caplog):
    """The anchor is public, so reading it is fine; but whoever can write it chooses the
    federation's root of trust at the next start."""
    import logging

    from consent import load_directory

    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(federation.trust_anchor.read_bytes())
    anchor.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        load_directory(federation.directory_path, trust_anchor=anchor, now=T0)
    assert str(anchor) not in caplog.text
    anchor.chmod(0o666)
    for given in (anchor, str(anchor)):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            load_directory(federation.directory_path, trust_anchor=given, now=T0)
        assert str(anchor) in caplog.text and "write" in caplog.text


def test_a_private_key_where_a_public_one_belongs_and_the_reverse_say_so(federation, tmp_path):
    """``--trust-anchor gmca.key`` or a private PEM pasted into the directory was refused as
    a "malformed" public key, and ``--signing-key broker.pub`` as unreadable: an admin
    could not tell what was wrong. The errors name the mix-up (never the key)."""
    import yaml

    from consent import KeyInvalid, load_private_key, load_public_key, parse_directory

    private = federation.keys["gmca"].signing.private
    with pytest.raises(KeyInvalid, match="private key"):
        load_public_key(private)
    with pytest.raises(KeyInvalid, match="holds a public key"):
        load_private_key(federation.keys["gmca"].signing.public)
    document = yaml.safe_load(federation.document_path.read_text())
    document["members"][0]["signing_key"] = private.read_text()
    with pytest.raises(DirectoryInvalid) as caught:
        parse_directory(yaml.safe_dump(document))
    assert "private key" in str(caught.value)
    assert "PRIVATE KEY-----\n" not in str(caught.value)


@pytest.mark.parametrize(
    "member_id",
    [
        "\u0415\u0030\u0038\u0030\u0030\u0030\u0030\u0030\u0033",  # Cyrillic 'Е' + "08000003"
        "E08000003,O=gmca",  # a second attribute in its certificate subject
        "../broker",  # a folder outside the principals' folder
        "E08000003 extra",
        "x" * 65,
    ],
)
def test_a_member_id_that_cannot_name_a_topic_or_principal_is_refused(federation, member_id):
    """A member's id is its Kafka principal, its certificate's CN and part of its topic
    names. A look-alike of another council's id (a reviewer cannot tell them apart), or
    one that adds to a certificate subject or names no valid topic, must not be signed."""
    import yaml

    from consent import parse_directory

    document = yaml.safe_load(federation.document_path.read_text())
    member = dict(next(m for m in document["members"] if m["kind"] == "council"))
    member["id"] = member_id
    member["signing_key"] = "ed25519:" + public_key_b64(generate_signing_key())
    document["members"].append(member)
    with pytest.raises(DirectoryInvalid) as caught:
        parse_directory(yaml.safe_dump(document))
    assert "member id" in str(caught.value)


def test_a_serial_store_that_cannot_be_written_is_a_typed_refusal(federation, tmp_path):
    """A full disk or a mistyped state path made ``SerialStore.accept`` raise a bare
    OSError: a broker refused to start with an "internal error", and a running one's
    reload failed untyped. It is ``serial-store-invalid`` (retried at the next poll)."""
    from consent import verify_directory

    (tmp_path / "not-a-folder").write_text("")
    store = SerialStore(tmp_path / "not-a-folder" / "serials.json")
    directory = verify_directory(signed(federation), trust_anchor=federation.trust_anchor, now=T0)
    with pytest.raises(DirectoryInvalid) as caught:
        store.accept(directory)
    assert caught.value.reason == "serial-store-invalid"


def test_writing_a_key_pair_never_writes_through_a_planted_symlink(tmp_path):
    """``keys gen --out shared/x``: someone who can write ``shared/`` plants ``x.pub`` as a
    link to a file only the admin may write; the public key was written through the link,
    clobbering that file. Both files of the pair replace whatever is at their path."""
    from consent import write_key_pair

    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "x.pub").symlink_to(victim)
    (shared / "x.key").symlink_to(victim)
    key = generate_signing_key()
    paths = write_key_pair(key, shared / "x")
    assert victim.read_text() == "precious\n"
    assert not paths.public.is_symlink() and not paths.private.is_symlink()
    assert public_key_b64(key) in load_public_key_b64(paths.public)


def load_public_key_b64(path):
    from consent import load_public_key

    return public_key_b64(load_public_key(path))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("expires_at", "9999-12-31T23:59:59-01:00"),
        ("issued_at", "0001-01-01T00:00:00+01:00"),
        ("federation_start", "9999-12-31T23:59:59-05:00"),
    ],
)
def test_a_time_that_overflows_in_utc_is_a_listed_problem_not_a_crash(federation, field, value):
    """ "Never expires" written as year 9999 west of Greenwich is year 10000 in UTC:
    ``parse_directory`` (and so ``directory sign``) raised a bare OverflowError."""
    import yaml

    from consent import parse_directory

    document = yaml.safe_load(federation.document_path.read_text())
    document[field] = value
    with pytest.raises(DirectoryInvalid) as caught:
        parse_directory(yaml.safe_dump(document, sort_keys=False))
    assert f"'{field}'" in str(caught.value)


@pytest.mark.parametrize("value", ["9999-12-31", "9999-12-31T23:59:59-01:00"])
def test_an_agreement_valid_until_the_end_of_time_is_a_listed_problem_not_a_crash(
    agreement_yaml, value
):
    """``valid_until: 9999-12-31`` (an admin's "never ends") ends at the start of year
    10000: ``parse_agreement``, and every directory embedding it, raised OverflowError."""
    from consent import AgreementInvalid, parse_agreement

    with pytest.raises(AgreementInvalid) as caught:
        parse_agreement(agreement_yaml(valid_until=value))
    assert "'valid_until'" in str(caught.value)
