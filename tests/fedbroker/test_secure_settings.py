"""Credentials as a careless clerk would handle them: CA, files and settings (pure tier)."""

from __future__ import annotations

import logging
import os
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from consent import KafkaSecurity, KeyInvalid, Secret
from fedbroker._tls import NODE_PRINCIPAL, LocalPki
from tests.ports import kafka_port


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LocalPki:
    pki = LocalPki(tmp_path_factory.mktemp("tls"))
    pki.ensure_node()
    pki.ensure_client("E08000003")
    return pki


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_private_file_is_owner_only(pki: LocalPki):
    files = pki.client_files("E08000003")
    for private in (pki.folder / "ca.key", pki.node_keystore, pki.node_password_file,
                    files.key_file):  # fmt: skip
        assert _mode(private) == 0o600, private
    assert not list(pki.folder.rglob(".*")), "no temporary file is left behind"


def test_a_client_certificate_names_its_party_and_is_signed_by_the_ca(pki: LocalPki):
    files = pki.client_files("E08000003")
    cert = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
    ca = x509.load_pem_x509_certificate(pki.ca_file.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "E08000003"
    cert.verify_directly_issued_by(ca)
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]  # cannot pose as a Kafka node


def test_issuing_again_keeps_the_existing_credentials(pki: LocalPki):
    files = pki.client_files("E08000003")
    before = files.cert_file.read_bytes(), pki.ca_file.read_bytes()
    pki.ensure_client("E08000003")
    pki.ensure_node()
    assert (files.cert_file.read_bytes(), pki.ca_file.read_bytes()) == before


@pytest.mark.parametrize("bad", ["../etc", "a/b", "CN=x,O=y", "", ".hidden", "x" * 65])
def test_a_principal_that_could_escape_its_folder_or_subject_is_refused(pki: LocalPki, bad):
    with pytest.raises(ValueError):
        pki.client_files(bad)


def test_the_node_keystore_opens_only_with_its_password(pki: LocalPki):
    from cryptography.hazmat.primitives.serialization import pkcs12

    password = pki.node_password_file.read_bytes()
    store = pkcs12.load_pkcs12(pki.node_keystore.read_bytes(), password)
    assert store.cert is not None
    subject = store.cert.certificate.subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == NODE_PRINCIPAL
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(pki.node_keystore.read_bytes(), b"guess")


def _mtls(pki: LocalPki) -> KafkaSecurity:
    files = pki.client_files("E08000003")
    return KafkaSecurity(ca_file=files.ca_file, cert_file=files.cert_file, key_file=files.key_file)


def test_mutual_tls_adapters_for_each_client_library(pki: LocalPki):
    security = _mtls(pki)
    assert security.protocol == "SSL"
    kp = security.kafka_python()
    assert kp["security_protocol"] == "SSL" and kp["ssl_check_hostname"] is True
    assert kp["ssl_certfile"].endswith("cert.pem") and kp["ssl_keyfile"].endswith("key.pem")
    aio = security.aiokafka()
    assert aio["security_protocol"] == "SSL"
    context = aio["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert security.librdkafka()["security.protocol"] == "ssl"


def test_scram_over_tls_adapters_and_the_password_never_shows(pki: LocalPki, tmp_path: Path):
    (tmp_path / "pw").write_text("hunter2-very-secret\n")
    security = KafkaSecurity.from_mapping(
        {"ca_file": str(pki.ca_file), "sasl_username": "broker", "sasl_password_file": "pw"},
        base=tmp_path,
    )
    assert security.protocol == "SASL_SSL"
    assert security.kafka_python()["sasl_plain_password"] == "hunter2-very-secret"
    assert security.kafka_python()["sasl_mechanism"] == "SCRAM-SHA-512"
    assert security.aiokafka()["sasl_plain_username"] == "broker"
    assert security.librdkafka()["sasl.mechanisms"] == "SCRAM-SHA-512"
    for shown in (repr(security), str(security), f"{security.sasl_password}"):
        assert "hunter2" not in shown


def test_a_secret_logged_by_mistake_stays_masked(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.INFO):
        logging.getLogger("careless").info("settings %s %r", Secret("s3cr3t"), Secret("s3cr3t"))
    assert "s3cr3t" not in caplog.text


def test_settings_from_the_environment_or_a_file(pki: LocalPki, tmp_path: Path):
    files = pki.client_files("E08000003")
    env = {
        "FEDBROKER_KAFKA_CA_FILE": str(files.ca_file),
        "FEDBROKER_KAFKA_CERT_FILE": str(files.cert_file),
        "FEDBROKER_KAFKA_KEY_FILE": str(files.key_file),
    }
    assert KafkaSecurity.from_env(env) == _mtls(pki)
    settings = tmp_path / "kafka-security.yaml"
    settings.write_text(
        f"ca_file: {files.ca_file}\ncert_file: {files.cert_file}\nkey_file: {files.key_file}\n"
    )
    assert KafkaSecurity.from_env({"FEDBROKER_KAFKA_SECURITY_FILE": str(settings)}) == _mtls(pki)
    assert KafkaSecurity.from_env({}) == KafkaSecurity()
    assert KafkaSecurity().kafka_python() == {} and KafkaSecurity().aiokafka() == {}
    assert KafkaSecurity().ssl_context() is None and KafkaSecurity().librdkafka() == {}
    scram = KafkaSecurity.from_env(
        {
            "FEDBROKER_KAFKA_CA_FILE": str(files.ca_file),
            "FEDBROKER_KAFKA_SASL_USERNAME": "svc",
            "FEDBROKER_KAFKA_SASL_PASSWORD": "pw-from-orchestrator",
        }
    )
    assert scram.protocol == "SASL_SSL" and "pw-from" not in repr(scram)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"cert_file": "c.pem"}, "needs its key"),
        ({"ca_file": "ca.pem", "key_file": "k.pem"}, "needs its key"),
        ({"sasl_username": "u", "ca_file": "ca.pem"}, "user name and a password"),
        ({"cert_file": "c.pem", "key_file": "k.pem"}, "CA file"),
        ({"ca_file": "missing.pem"}, "does not exist"),
        ({"ca_file": "ca.pem", "sasl_mechanism": "PLAIN"}, "unsupported SASL"),
        ({"ssl_cafile": "ca.pem"}, "unknown Kafka security setting"),
        ({"ca_file": "ca.pem", "key_password_file": "nope"}, "password file"),
    ],
)
def test_incomplete_or_wrong_settings_are_refused_by_name(tmp_path: Path, values, problem):
    for name in ("ca.pem", "c.pem", "k.pem"):
        (tmp_path / name).write_text("x")
    with pytest.raises(KeyInvalid, match=problem) as caught:
        KafkaSecurity.from_mapping(values, base=tmp_path)
    assert caught.value.reason == "key-invalid"


def test_a_settings_file_that_is_not_a_mapping_is_refused(tmp_path: Path):
    bad = tmp_path / "s.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(KeyInvalid, match="must be a mapping"):
        KafkaSecurity.from_file(bad)
    with pytest.raises(KeyInvalid, match="cannot read"):
        KafkaSecurity.from_file(tmp_path / "absent.yaml")


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedbroker", *args],
        capture_output=True, text=True, check=False, timeout=60,
        env={**os.environ, "FEDBROKER_HOME": str(home)},
    )  # fmt: skip


def test_a_bad_directory_is_refused_before_any_node_starts(tmp_path: Path):
    forged = tmp_path / "directory.signed"
    forged.write_text("format: fedbroker-directory/1\nmembers: []\n")
    anchor = tmp_path / "anchor.pub"
    anchor.write_text("not a key")
    port = kafka_port("secure-settings")
    up = _cli(tmp_path, "kafka", "up", "--secure", "--port", str(port),
              "--directory", str(forged), "--trust-anchor", str(anchor))  # fmt: skip
    assert up.returncode == 1 and "error [" in up.stderr
    assert not (tmp_path / "kafka" / f"cluster-1x{port}").exists()
    plain = _cli(tmp_path, "kafka", "up", "--port", str(port), "--directory", str(forged))
    assert plain.returncode == 1 and "--secure" in plain.stderr
