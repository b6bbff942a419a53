"""The Compose Kafka configuration, run for real: the node starts from
``deploy/compose/kafka/server.properties`` (paths and host moved onto this machine, every
security setting unchanged) with the credentials ``prepare.py`` makes, refuses a
plaintext client and one without a certificate, and the ``acls`` service's command
sets the directory's ACLs as ``admin``. Docker cannot run here, so the project's own
Kafka jars stand in for the ``apache/kafka`` image's."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from consent import KafkaSecurity
from fedbroker import KafkaCluster
from tests.deploy.conftest import DEPLOY, REPO, load_script
from tests.ports import SERVERS

pytestmark = pytest.mark.slow

PORT, CONTROLLER_PORT = SERVERS["compose-kafka"]
MOUNTED = {"kafka-node-keystore": "pki/node.p12", "kafka-node-password": "pki/node.password",
           "kafka-ca": "pki/ca.pem"}  # fmt: skip


def _config(tmp_path: Path) -> Path:
    """The Compose file's properties, with /run/secrets, the host and the ports moved."""
    secrets = tmp_path / "run-secrets"
    secrets.mkdir()
    for name, relative in MOUNTED.items():
        shutil.copy(tmp_path / "secrets" / relative, secrets / name)
    text = (DEPLOY / "compose" / "kafka" / "server.properties").read_text()
    text = (text.replace("/run/secrets", str(secrets))
            .replace("kafka:9094", f"127.0.0.1:{CONTROLLER_PORT}")
            .replace("SSL://kafka:9093", f"SSL://127.0.0.1:{PORT}")
            .replace("SSL://:9093", f"SSL://127.0.0.1:{PORT}")
            .replace("CONTROLLER://:9094", f"CONTROLLER://127.0.0.1:{CONTROLLER_PORT}")
            .replace("/var/lib/kafka/data", str(tmp_path / "kafka-data")))  # fmt: skip
    assert "kafka:" not in text and "/run/secrets" not in text
    config = tmp_path / "server.properties"
    config.write_text(text)
    return config


def _java(libs: Path, main: str, *args: str) -> list[str]:
    return ["java", "-Xmx384m", "-cp", f"{libs}/*", main, *args]


def _admin(security: KafkaSecurity) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{PORT}", request_timeout_ms=5000,
                            bootstrap_timeout_ms=8000, reconnect_backoff_max_ms=1000,
                            **security.kafka_python())  # fmt: skip


def _principal(tmp_path: Path, name: str) -> KafkaSecurity:
    folder = tmp_path / "secrets" / "pki" / "principals" / name
    return KafkaSecurity(ca_file=tmp_path / "secrets/pki/ca.pem",
                         cert_file=folder / "cert.pem", key_file=folder / "key.pem")  # fmt: skip


def test_the_compose_kafka_config_runs_secured_and_takes_the_directorys_acls(
    tmp_path, fedbroker_home
):
    load_script(DEPLOY / "compose" / "prepare.py").prepare(tmp_path, people=10)
    config = _config(tmp_path)
    libs = KafkaCluster(home=fedbroker_home).ensure_jars()
    formatted = subprocess.run(
        _java(libs, "kafka.tools.StorageTool", "format", "-t", "bR8MOlsuT3qcEQ8eLTxLWg",
              "-c", str(config)),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    log = tmp_path / "kafka.log"
    node = subprocess.Popen(_java(libs, "kafka.Kafka", str(config)), stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        admin_security = _principal(tmp_path, "admin")
        deadline = time.monotonic() + 90
        while True:
            try:
                admin = _admin(admin_security)
                admin.list_topics()
                admin.close()
                break
            except KafkaError:
                assert node.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(1)

        # Plaintext, and TLS without a client certificate, are both refused.
        for security in (KafkaSecurity(), KafkaSecurity(ca_file=tmp_path / "secrets/pki/ca.pem")):
            with pytest.raises(KafkaError):
                _admin(security).list_topics()

        # The compose `acls` service: `directory acls --apply` as admin, from files.
        federation = tmp_path / "secrets" / "federation"
        env = {**os.environ,
               "FEDBROKER_KAFKA_CA_FILE": str(admin_security.ca_file),
               "FEDBROKER_KAFKA_CERT_FILE": str(admin_security.cert_file),
               "FEDBROKER_KAFKA_KEY_FILE": str(admin_security.key_file)}  # fmt: skip
        applied = subprocess.run(
            [str(REPO / ".venv/bin/fedbroker"), "directory", "acls",
             str(federation / "directory.signed"), "--trust-anchor",
             str(federation / "keys" / "gmca.signing.pub"), "--apply",
             "--bootstrap", f"127.0.0.1:{PORT}"],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert applied.returncode == 0, applied.stderr[-2000:]
        assert "created" in applied.stderr and " 0 created" not in applied.stderr
        password = (tmp_path / "secrets/pki/node.password").read_text()
        assert password not in config.read_text() and password not in log.read_text()
    finally:
        node.terminate()
        node.wait(timeout=60)
