"""Three councils, a broker worker and a subscriber, each as its own principal, on secured Kafka.

Every process holds only its own party's certificate: connectors through
``kafka.security`` in their YAML, the broker, the subscriber and ``audit verify``
through ``FEDBROKER_KAFKA_SECURITY_FILE``. The ACLs are those the directory
implies, so this proves they are enough for the whole pipeline, not only that
they refuse. Its own secured cluster (tests/ports.py), started once for the module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from connectors import generate_federation, generate_linkage_key, load_config, open_connector
from consent import DevFederation, build_dev_federation, notify_topic
from fedbroker import KafkaCluster
from fedbroker._topics import read_to_end
from tests.ports import kafka_port

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PORT = kafka_port("secure-e2e")
COUNCILS = ("E08000003", "E08000006", "E08000009")
HEAP = "-Xmx320m -Xms96m"


def _env(home: Path, security: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "FEDBROKER_HOME": str(home), "FEDBROKER_KAFKA_HEAP": HEAP}
    # ``kafka up --directory`` records the serial it accepted: here, not in ~/.local/state
    env["FEDBROKER_DIRECTORY_SERIALS"] = str(home / "directory-serials.json")
    env.pop("FEDBROKER_KAFKA_SECURITY_FILE", None)
    if security is not None:
        env["FEDBROKER_KAFKA_SECURITY_FILE"] = str(security)
    return env


def _fedbroker(home: Path, *args: str, security: Path | None = None, timeout: float = 240):
    return subprocess.run(
        [sys.executable, "-m", "fedbroker", *args],
        capture_output=True, text=True, env=_env(home, security), timeout=timeout, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def secured(
    fedbroker_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[KafkaCluster, DevFederation]]:
    federation = build_dev_federation(tmp_path_factory.mktemp("fed"), councils=list(COUNCILS))
    up = _fedbroker(
        fedbroker_home, "kafka", "up", "--secure", "--fresh", "--port", str(PORT),
        "--directory", str(federation.directory_path),
        "--trust-anchor", str(federation.trust_anchor),
    )  # fmt: skip
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        yield KafkaCluster(1, PORT, fedbroker_home, secure=True), federation
    finally:
        _fedbroker(fedbroker_home, "kafka", "down", "--port", str(PORT))


def _settings_file(cluster: KafkaCluster, principal: str) -> Path:
    return cluster.pki.client_files(principal).cert_file.parent / "kafka-security.yaml"


def _notifications(cluster: KafkaCluster, federation: DevFederation) -> dict[str, int]:
    admin = cluster.security().kafka_python()
    return {
        s: len(read_to_end(cluster.bootstrap, notify_topic("fed", s), consumer_config=admin))
        for s in federation.services
    }


def test_three_councils_a_broker_and_a_subscriber_run_with_least_privilege(
    secured, fedbroker_home: Path, tmp_path: Path
):
    cluster, federation = secured
    synth = generate_federation(tmp_path / "councils", councils=COUNCILS, people=80)
    keys = tmp_path / "linkage-keys.json"
    keys.write_text(json.dumps({"1": generate_linkage_key(1).secret.hex()}))
    keys.chmod(0o600)
    broker_key = federation.keys["broker"].signing
    assert broker_key is not None
    log = tmp_path / "broker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "fedbroker", "broker", "run", "--bootstrap", cluster.bootstrap,
         "--directory", str(federation.directory_path),
         "--trust-anchor", str(federation.trust_anchor), "--signing-key", str(broker_key.private),
         "--data-dir", str(tmp_path / "broker"), "--store", "memory://",
         "--checkpoint-interval", "5", "--threshold", "0.8"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
        env=_env(fedbroker_home, _settings_file(cluster, "broker")),
    )  # fmt: skip
    try:
        for council in COUNCILS:
            files = cluster.pki.client_files(council)
            inbox = tmp_path / council / "inbox"
            inbox.mkdir(parents=True)
            os.replace(synth.files[council], inbox / "extract.csv")
            signing = federation.keys[council].signing
            assert signing is not None
            config = tmp_path / council / "connector.yaml"
            config.write_text(yaml.safe_dump({
                "council": council, "directory": str(federation.directory_path),
                "trust_anchor": str(federation.trust_anchor), "signing_key": str(signing.private),
                "linkage_keys": str(keys), "outbox": str(tmp_path / council / "outbox.sqlite"),
                "kafka": {"bootstrap": cluster.bootstrap, "security": {
                    "ca_file": str(files.ca_file), "cert_file": str(files.cert_file),
                    "key_file": str(files.key_file)}},
                "sources": [{"name": "revenues", "kind": "csv", "path": str(inbox),
                             "mapping": str(synth.mapping)}],
            }))  # fmt: skip
            connector = open_connector(load_config(config))
            try:
                assert connector.run(once=True) > 0
                assert connector.outbox.pending(1) == []  # every event acknowledged
            finally:
                connector.close()

        # Wait on the condition: notification counts stop changing (the broker has drained).
        deadline, last, stable = time.monotonic() + 240, None, 0
        while stable < 4:
            assert worker.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, ("never settled", log.read_text()[-3000:])
            counts = _notifications(cluster, federation)
            stable = stable + 1 if counts == last and sum(counts.values()) else 0
            last = counts
            time.sleep(3)
        assert last is not None
        service, expected = max(last.items(), key=lambda item: item[1])
        assert expected > 0, (last, log.read_text()[-3000:])
        assert "AuthorizationFailed" not in log.read_text()
    finally:
        worker.terminate()
        worker.wait(timeout=60)

    sealing = federation.keys[service].sealing
    assert sealing is not None
    received = tmp_path / "received.jsonl"
    subscribed = _fedbroker(
        fedbroker_home, "subscribe", "--bootstrap", cluster.bootstrap, "--service", service,
        "--key", str(sealing.private), "--directory", str(federation.directory_path),
        "--trust-anchor", str(federation.trust_anchor), "--state", str(tmp_path / "sub"),
        "--jsonl", str(received), "--max-messages", str(expected), "--timeout", "30",
        security=_settings_file(cluster, service),
    )  # fmt: skip
    assert subscribed.returncode == 0, subscribed.stderr[-3000:]
    lines = received.read_text().splitlines()
    assert len(lines) == expected
    assert len({json.loads(line)["notification_id"] for line in lines}) == expected

    audit_args = ("audit", "verify", "--bootstrap", cluster.bootstrap,
                  "--directory", str(federation.directory_path),
                  "--trust-anchor", str(federation.trust_anchor),
                  "--anchors", str(tmp_path / "anchors.json"),
                  "--checkpoint-interval", "5")  # fmt: skip
    verified = _fedbroker(fedbroker_home, *audit_args, security=_settings_file(cluster, "gmca"))
    assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr[-2000:]
    # A service's certificate cannot read the audit trail.
    refused = _fedbroker(fedbroker_home, *audit_args, security=_settings_file(cluster, service))
    assert refused.returncode != 0
