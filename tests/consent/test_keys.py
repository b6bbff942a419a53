"""Keys and sealing: PEM round trips, 0600 private files, signatures, HPKE sealing."""

from __future__ import annotations

import stat

import pytest

from consent import (
    KeyInvalid,
    SealingFailed,
    SignatureInvalid,
    generate_sealing_key,
    generate_signing_key,
    load_private_key,
    load_public_key,
    open_sealed,
    public_key_b64,
    public_key_pem,
    seal,
    sign,
    verify_signature,
    write_key_pair,
)


def test_key_pair_files_are_pem_and_the_private_one_is_0600(tmp_path):
    key = generate_signing_key()
    paths = write_key_pair(key, tmp_path / "sub" / "council")
    assert stat.S_IMODE(paths.private.stat().st_mode) == 0o600
    assert paths.private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert paths.public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    loaded = load_private_key(paths.private)
    assert public_key_b64(loaded) == public_key_b64(key)
    assert public_key_b64(load_public_key(paths.public)) == public_key_b64(key)


def test_public_key_forms_pem_text_path_string_and_base64():
    key = generate_sealing_key()
    b64 = public_key_b64(key)
    assert public_key_b64(load_public_key(public_key_pem(key))) == b64
    assert public_key_b64(load_public_key(f"x25519:{b64}")) == b64
    with pytest.raises(KeyInvalid):
        load_public_key(f"x25519:{b64}", kind="signing")
    with pytest.raises(KeyInvalid):
        load_public_key("ed25519:not-base64!")
    with pytest.raises(KeyInvalid):
        load_public_key("nonsense")


def test_load_private_key_refuses_missing_and_garbage(tmp_path):
    with pytest.raises(KeyInvalid):
        load_private_key(tmp_path / "missing.key")
    (tmp_path / "bad.key").write_text("not a key")
    with pytest.raises(KeyInvalid):
        load_private_key(tmp_path / "bad.key")


def test_sign_and_verify():
    key = generate_signing_key()
    signature = sign(key, b"data")
    verify_signature(key.public_key(), b"data", signature)
    with pytest.raises(SignatureInvalid):
        verify_signature(key.public_key(), b"datA", signature)
    with pytest.raises(SignatureInvalid):
        verify_signature(generate_signing_key().public_key(), b"data", signature)
    with pytest.raises(SignatureInvalid):
        verify_signature(generate_sealing_key().public_key(), b"data", signature)


def test_seal_opens_only_with_the_right_key_and_event_id():
    recipient = generate_sealing_key()
    enc, ciphertext = seal(recipient.public_key(), b'{"postcode": "M1 1AA"}', aad="evt-1")
    assert len(enc) == 32
    assert b"M1 1AA" not in ciphertext
    assert open_sealed(recipient, enc, ciphertext, aad="evt-1") == b'{"postcode": "M1 1AA"}'
    with pytest.raises(SealingFailed):
        open_sealed(recipient, enc, ciphertext, aad="evt-2")
    with pytest.raises(SealingFailed):
        open_sealed(generate_sealing_key(), enc, ciphertext, aad="evt-1")
    altered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    with pytest.raises(SealingFailed):
        open_sealed(recipient, enc, altered, aad="evt-1")
    with pytest.raises(SealingFailed):
        open_sealed(recipient, enc[:-1], ciphertext, aad="evt-1")


def test_sealing_is_randomised_and_refuses_signing_keys():
    recipient = generate_sealing_key()
    assert seal(recipient.public_key(), b"x", aad="e") != seal(
        recipient.public_key(), b"x", aad="e"
    )
    with pytest.raises(KeyInvalid):
        seal(generate_signing_key().public_key(), b"x", aad="e")  # type: ignore[arg-type]


def test_key_kinds_are_checked(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    signing, sealing = generate_signing_key(), generate_sealing_key()
    paths = write_key_pair(signing, tmp_path / "k")
    assert public_key_b64(load_public_key(paths.public, kind="signing")) == public_key_b64(signing)
    assert public_key_b64(load_public_key(str(paths.public))) == public_key_b64(signing)
    with pytest.raises(KeyInvalid):
        load_public_key(paths.public, kind="sealing")
    with pytest.raises(KeyInvalid):
        load_public_key(tmp_path / "missing.pub")
    with pytest.raises(KeyInvalid):
        load_public_key("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    with pytest.raises(KeyInvalid):
        sign(sealing, b"x")  # type: ignore[arg-type]
    with pytest.raises(KeyInvalid):
        open_sealed(signing, b"\x00" * 32, b"", aad="e")  # type: ignore[arg-type]
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "ec.key").write_bytes(pem)
    with pytest.raises(KeyInvalid):
        load_private_key(tmp_path / "ec.key")
    ec_pub = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(KeyInvalid):
        load_public_key(ec_pub)


def test_private_key_is_0600_even_over_a_world_readable_file_and_with_umask_zero(tmp_path):
    """O_TRUNC would keep an existing file's mode; the key is written to a new 0600 file."""
    import os

    target = tmp_path / "council"
    (tmp_path / "council.key").write_text("old")
    (tmp_path / "council.key").chmod(0o644)
    previous = os.umask(0)
    try:
        paths = write_key_pair(generate_signing_key(), target)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(paths.private.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["council.key", "council.pub"]


def test_a_private_key_is_never_written_into_a_looser_file(tmp_path, monkeypatch):
    """Over a world-readable old key, the secret's bytes go only into a 0600 file
    (write-then-chmod left them world-readable until the chmod)."""
    import os

    from consent import write_secret_file

    (tmp_path / "svc.key").write_text("old")
    (tmp_path / "svc.key").chmod(0o644)
    seen: list[int] = []
    real_fdopen = os.fdopen

    def spy(fd, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return real_fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", spy)
    write_key_pair(generate_sealing_key(), tmp_path / "svc")
    path = write_secret_file(tmp_path / "linkage-keys.json", b'{"1": "00"}')
    # the key, the public half (a temporary file too, made 0644 once whole), the secret
    assert seen == [0o600, 0o600, 0o600]
    assert stat.S_IMODE((tmp_path / "svc.pub").stat().st_mode) == 0o644
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == b'{"1": "00"}'


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_loading_a_group_or_world_readable_private_key_warns_without_the_secret(
    tmp_path, caplog, mode
):
    import logging

    from consent import private_key_pem

    key = generate_signing_key()
    paths = write_key_pair(key, tmp_path / "broker")
    paths.private.chmod(mode)
    with caplog.at_level(logging.WARNING, logger="consent._keys"):
        load_private_key(paths.private)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert str(paths.private) in text and f"{mode:04o}" in text
    pem = private_key_pem(key).decode()
    body = "".join(pem.splitlines()[1:-1])
    assert body[:16] not in caplog.text and "PRIVATE KEY" not in caplog.text


def test_loading_a_0600_private_key_is_silent(tmp_path, caplog):
    import logging

    paths = write_key_pair(generate_sealing_key(), tmp_path / "svc")
    with caplog.at_level(logging.WARNING, logger="consent._keys"):
        load_private_key(paths.private)
    assert not caplog.records


def test_loading_a_world_readable_linkage_key_file_warns(tmp_path, caplog):
    """The connector's linkage keys are secrets too: same warning, no secret in it."""
    import logging

    from connectors import load_linkage_keys

    path = tmp_path / "linkage-keys.json"
    path.write_text('{"1": "' + "ab" * 32 + '"}')
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="consent._keys"):
        assert load_linkage_keys(path)[0].epoch == 1
    assert "0644" in caplog.text and "abab" not in caplog.text
    caplog.clear()
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="consent._keys"):
        load_linkage_keys(path)
    assert not caplog.records
