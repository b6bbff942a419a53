"""The secured cluster refuses what the directory does not allow (real Kafka, TLS, ACLs).

One secured single-node cluster for this module, started by the CLI exactly as
an operator would (``kafka up --secure --directory``), on its own port with a
small heap. Each forbidden operation must fail with Kafka's authorisation error
(or, for a client that cannot authenticate at all, fail to connect); each
allowed one must work, so a test cannot pass merely because Kafka is down.
Reads use aiokafka, the client under Faust; writes use kafka-python, the
connectors' client.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import GroupAuthorizationFailedError as AioGroupAuthorizationFailed
from aiokafka.errors import TopicAuthorizationFailedError as AioTopicAuthorizationFailed
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAuthorizationFailedError

from consent import DevFederation, KafkaSecurity, build_dev_federation, sign_directory
from fedbroker import KafkaCluster
from fedbroker._tls import LocalPki
from fedbroker.cli._state_files import SERIALS_ENV
from tests.ports import kafka_port

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PORT = kafka_port("secure-kafka")
COUNCILS = ("E08000001", "E08000002", "E08000003")
SERVICES = {"E08000001.revenues": "E08000001", "E08000002.revenues": "E08000002", "gmca.unit": None}
HEAP = "-Xmx320m -Xms96m"


def _fedbroker(home: Path, *args: str, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "fedbroker", *args],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "FEDBROKER_HOME": str(home),
            "FEDBROKER_KAFKA_HEAP": HEAP,
            # ``kafka up --directory`` records the serial it accepted: not in ~/.local/state
            SERIALS_ENV: str(home / "directory-serials.json"),
            **(env or {}),
        },
        timeout=240,
        check=False,
    )


@dataclass(frozen=True)
class Secured:
    cluster: KafkaCluster
    federation: DevFederation
    up_output: str

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap

    def security(self, principal: str) -> KafkaSecurity:
        return self.cluster.security(principal)


@pytest.fixture(scope="module")
def secured(fedbroker_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    federation = build_dev_federation(
        tmp_path_factory.mktemp("fed"), councils=COUNCILS, services=SERVICES
    )
    up = _fedbroker(
        fedbroker_home, "kafka", "up", "--secure", "--fresh", "--port", str(PORT),
        "--directory", str(federation.directory_path),
        "--trust-anchor", str(federation.trust_anchor),
    )  # fmt: skip
    cluster = KafkaCluster(1, PORT, fedbroker_home, secure=True)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        secured = Secured(cluster, federation, up.stdout + up.stderr)
        _create_topics(secured)
        yield secured
    finally:
        _fedbroker(fedbroker_home, "kafka", "down", "--port", str(PORT))


def _create_topics(secured: Secured) -> None:
    """Created as the broker principal, as ``broker run`` does (proving its Create right)."""
    names = [f"fed.{r}.{c}" for c in COUNCILS for r in ("events", "consent")]
    names += ["fed.audit", "fed.rejected"] + [f"fed.notify.{s}" for s in SERVICES]
    admin = KafkaAdminClient(
        bootstrap_servers=secured.bootstrap, **secured.security("broker").kafka_python()
    )
    try:
        admin.create_topics([NewTopic(n, 1, 1) for n in names])
    finally:
        admin.close()


def _write(secured: Secured, principal: str, topic: str) -> None:
    producer = KafkaProducer(
        bootstrap_servers=secured.bootstrap, acks="all", enable_idempotence=True,
        max_block_ms=15000, **secured.security(principal).kafka_python(),
    )  # fmt: skip
    try:
        producer.send(topic, key=b"k", value=uuid.uuid4().bytes).get(timeout=20)
    finally:
        producer.close(timeout=2)


async def _aread(secured: Secured, principal: str, topic: str, group: str | None) -> int:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=secured.bootstrap, group_id=group,
        auto_offset_reset="earliest", enable_auto_commit=False,
        **secured.security(principal).aiokafka(),
    )  # fmt: skip
    try:
        await consumer.start()
        batches = await consumer.getmany(timeout_ms=8000)
        return sum(len(b) for b in batches.values())
    finally:
        await consumer.stop()


def _read(secured: Secured, principal: str, topic: str, group: str | None = None) -> int:
    """How many messages the principal read, or the authorisation error Kafka raised."""
    return asyncio.run(_aread(secured, principal, topic, group))


def _refused_write(secured: Secured, principal: str, topic: str) -> None:
    """Refused by the topic's ACL, or, for a principal that may write nowhere (the auditor),
    already when its idempotent producer asks for an id (kafka-python wraps that error)."""
    with pytest.raises(KafkaError) as caught:
        _write(secured, principal, topic)
    refused = caught.value
    assert isinstance(refused, TopicAuthorizationFailedError) or (
        "ClusterAuthorizationFailedError" in str(refused) and principal == "gmca"
    ), repr(refused)


def _refused_read(secured: Secured, principal: str, topic: str, group: str | None = None) -> None:
    with pytest.raises((AioTopicAuthorizationFailed, AioGroupAuthorizationFailed)):
        _read(secured, principal, topic, group)


def test_plaintext_kcat_is_refused_and_the_admin_lists_the_brokers(secured: Secured):
    kcat = shutil.which("kcat")
    assert kcat, "kcat (Debian package) must be installed by `make services`"
    plain = subprocess.run(
        [kcat, "-L", "-b", secured.bootstrap, "-m", "5"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert plain.returncode != 0 and "1 brokers:" not in plain.stdout
    conf = secured.cluster.pki.client_files("admin").cert_file.parent / "kcat.conf"
    admin = subprocess.run(
        [kcat, "-F", str(conf), "-L", "-b", secured.bootstrap, "-m", "20"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert admin.returncode == 0, admin.stderr
    assert "1 brokers:" in admin.stdout and "fed.audit" in admin.stdout


def test_no_credential_is_printed_and_every_private_file_is_owner_only(secured: Secured):
    pki = secured.cluster.pki
    password = pki.node_password_file.read_text().strip()
    assert password not in secured.up_output and "PRIVATE KEY" not in secured.up_output
    for path in pki.folder.rglob("*"):
        if path.is_file() and path.name in {"ca.key", "key.pem", "node.p12", "node.password"}:
            assert path.stat().st_mode & 0o077 == 0, path
    for node in secured.cluster.nodes:
        assert (node.directory / "server.properties").stat().st_mode & 0o077 == 0


def test_status_answers_through_the_admin_credentials(secured: Secured, fedbroker_home: Path):
    status = _fedbroker(fedbroker_home, "kafka", "status")
    assert f"{secured.bootstrap}: 1/1 node(s) running, brokers answering: [1]" in status.stdout


def _cannot_connect(secured: Secured, security: dict[str, object]) -> None:
    with pytest.raises(KafkaError):
        admin = KafkaAdminClient(
            bootstrap_servers=secured.bootstrap, request_timeout_ms=5000,
            api_version_auto_timeout_ms=5000, **security,
        )  # fmt: skip
        try:
            admin.list_topics()
        finally:
            admin.close()


def test_plaintext_unauthenticated_and_foreign_clients_cannot_connect(secured, tmp_path):
    _cannot_connect(secured, {})
    ca_only = KafkaSecurity(ca_file=secured.cluster.pki.ca_file)
    _cannot_connect(secured, ca_only.kafka_python())
    foreign = LocalPki(tmp_path / "foreign").ensure_client("broker")  # right name, wrong CA
    forged = KafkaSecurity(
        ca_file=secured.cluster.pki.ca_file, cert_file=foreign.cert_file, key_file=foreign.key_file
    )
    _cannot_connect(secured, forged.kafka_python())


def test_a_council_writes_its_own_topics_and_no_other_council_s(secured: Secured):
    _write(secured, "E08000001", "fed.events.E08000001")
    _write(secured, "E08000001", "fed.consent.E08000001")
    _refused_write(secured, "E08000001", "fed.events.E08000002")
    _refused_write(secured, "E08000001", "fed.consent.E08000003")


def test_only_the_broker_writes_audit_and_notifications(secured: Secured):
    _write(secured, "broker", "fed.audit")
    _write(secured, "broker", "fed.notify.E08000001.revenues")
    _write(secured, "broker", "fed.rejected")
    for intruder in ("E08000001", "E08000002.revenues", "gmca"):
        _refused_write(secured, intruder, "fed.audit")
        _refused_write(secured, intruder, "fed.notify.E08000001.revenues")
    _refused_write(secured, "broker", "fed.events.E08000001")  # it reads councils, never forges


def test_a_service_reads_only_its_own_notifications_with_its_own_group(secured: Secured):
    _write(secured, "broker", "fed.notify.E08000001.revenues")
    assert (
        _read(
            secured,
            "E08000001.revenues",
            "fed.notify.E08000001.revenues",
            "fed.subscriber.E08000001.revenues",
        )
        >= 1
    )
    _refused_read(secured, "E08000002.revenues", "fed.notify.E08000001.revenues")
    _refused_read(
        secured,
        "E08000002.revenues",
        "fed.notify.E08000001.revenues",
        "fed.subscriber.E08000002.revenues",
    )
    _refused_read(
        secured,
        "E08000001.revenues",
        "fed.notify.E08000001.revenues",
        "fed.subscriber.E08000002.revenues",
    )
    _refused_read(secured, "E08000001", "fed.notify.E08000001.revenues")
    _refused_read(secured, "E08000001.revenues", "fed.events.E08000001")


def test_the_broker_and_the_auditor_read_what_they_need_and_no_more(secured: Secured):
    _write(secured, "E08000002", "fed.events.E08000002")
    _write(secured, "broker", "fed.audit")
    assert _read(secured, "broker", "fed.events.E08000002", "fedbroker-broker") >= 1
    assert _read(secured, "gmca", "fed.audit") >= 1
    _refused_read(secured, "gmca", "fed.events.E08000002")
    _refused_read(secured, "E08000002", "fed.events.E08000002")  # a council cannot read back
    _refused_read(secured, "E08000001.revenues", "fed.audit")


def test_a_revoked_council_loses_its_rights_and_reapplying_is_idempotent(
    secured: Secured, fedbroker_home: Path, tmp_path: Path
):
    federation = secured.federation
    original = federation.document_path.read_text()
    document = yaml.safe_load(original)
    document["members"] = [m for m in document["members"] if m["id"] != "E08000003"]
    for agreement in document["agreements"]:
        agreement["controllers"] = [c for c in agreement["controllers"] if c != "E08000003"]
    document["agreements"] = [a for a in document["agreements"] if a["controllers"]]
    document["serial"] = 2
    revoked = tmp_path / "directory.signed"
    revoked.write_bytes(sign_directory(yaml.safe_dump(document), federation.signing_key("gmca")))
    # Re-admitting the council is a newer directory, never the older one put back
    # (that is refused as a rollback); this test keeps its serials to itself.
    readmitted_document = yaml.safe_load(original)
    readmitted_document["serial"] = 3
    readmitted = tmp_path / "readmitted.signed"
    readmitted.write_bytes(
        sign_directory(yaml.safe_dump(readmitted_document), federation.signing_key("gmca"))
    )
    admin_env = {
        "FEDBROKER_KAFKA_SECURITY_FILE": str(
            secured.cluster.pki.client_files("admin").cert_file.parent / "kafka-security.yaml"
        ),
        "KAFKA_BOOTSTRAP_SERVERS": secured.bootstrap,
        SERIALS_ENV: str(tmp_path / "directory-serials.json"),
    }

    def apply(directory: Path) -> str:
        result = _fedbroker(
            fedbroker_home, "directory", "acls", str(directory),
            "--trust-anchor", str(federation.trust_anchor), "--apply", env=admin_env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stderr

    _write(secured, "E08000003", "fed.events.E08000003")
    try:
        # The council's Write and Describe on its two topics, and the broker's Read,
        # Describe and Create on them: 4 + 6 rules.
        assert "applied: 0 created, 10 stale deleted" in apply(revoked)
        _refused_write(secured, "E08000003", "fed.events.E08000003")
        assert "applied: 0 created, 0 stale deleted" in apply(revoked)
        rolled_back = _fedbroker(
            fedbroker_home, "directory", "acls", str(federation.directory_path),
            "--trust-anchor", str(federation.trust_anchor), "--apply", env=admin_env,
        )  # fmt: skip
        assert rolled_back.returncode == 1 and "directory-rolled-back" in rolled_back.stderr
    finally:
        restored = apply(readmitted)
    assert "applied: 10 created, 0 stale deleted" in restored
    _write(secured, "E08000003", "fed.events.E08000003")


def test_applying_without_admin_rights_is_refused(secured: Secured, fedbroker_home: Path):
    council = secured.cluster.pki.client_files("E08000001").cert_file.parent
    result = _fedbroker(
        fedbroker_home, "directory", "acls", str(secured.federation.directory_path),
        "--trust-anchor", str(secured.federation.trust_anchor), "--apply",
        env={"FEDBROKER_KAFKA_SECURITY_FILE": str(council / "kafka-security.yaml"),
             "KAFKA_BOOTSTRAP_SERVERS": secured.bootstrap},
    )  # fmt: skip
    assert result.returncode == 1
    assert "acl-apply-failed" in result.stderr and "Authorization" in result.stderr


def test_a_connector_configured_with_kafka_security_publishes_only_to_its_own_topic(
    secured: Secured, tmp_path: Path
):
    from connectors import KafkaUnavailable, Publisher, load_config
    from connectors._outbox import OutboxEntry

    files = secured.cluster.pki.client_files("E08000002")
    federation = secured.federation
    config = tmp_path / "connector.yaml"
    config.write_text(
        yaml.safe_dump({
            "council": "E08000002", "directory": str(federation.directory_path),
            "trust_anchor": str(federation.trust_anchor),
            "signing_key": str(federation.keys["E08000002"].signing.private),
            "linkage_keys": str(tmp_path / "linkage.json"), "outbox": str(tmp_path / "o.sqlite"),
            "kafka": {"bootstrap": secured.bootstrap, "security": {
                "ca_file": str(files.ca_file), "cert_file": str(files.cert_file),
                "key_file": str(files.key_file)}},
            "sources": [{"name": "s", "kind": "csv", "path": str(tmp_path), "mapping": "m.yaml"}],
        })
    )  # fmt: skip
    loaded = load_config(config)
    assert loaded.security.protocol == "SSL" and loaded.security.cert_file == files.cert_file
    publisher = Publisher(secured.bootstrap, security=loaded.security, ack_timeout_s=10)

    def entry(topic: str) -> OutboxEntry:
        return OutboxEntry(1, "e1", topic, b"k", b"v", 0.0)

    try:
        outcome = publisher.publish([entry("fed.events.E08000002")])
        assert outcome.acknowledged == (entry("fed.events.E08000002"),)
        # Refused by the ACL: never acknowledged, kept in the outbox (not quarantined).
        with pytest.raises(KafkaUnavailable) as refused:
            publisher.publish([entry("fed.events.E08000001")])
        assert "Authorization" in repr(refused.value.__cause__) + str(refused.value)
    finally:
        publisher.close()


def test_audit_verify_reads_the_audit_topic_only_with_the_auditor_s_credentials(
    secured: Secured, fedbroker_home: Path
):
    args = ("audit", "verify", "--bootstrap", secured.bootstrap, "--topic", "fed.audit",
            "--timeout", "20")  # fmt: skip
    anonymous = _fedbroker(fedbroker_home, *args)
    assert anonymous.returncode != 0
    auditor = secured.cluster.pki.client_files("gmca").cert_file.parent / "kafka-security.yaml"
    as_auditor = _fedbroker(
        fedbroker_home, *args, "--directory", str(secured.federation.directory_path),
        "--trust-anchor", str(secured.federation.trust_anchor),
        env={"FEDBROKER_KAFKA_SECURITY_FILE": str(auditor)},
    )  # fmt: skip
    # The records on fed.audit here are the other tests' test bytes, so the chain
    # does not verify; what matters is that the auditor got to read them.
    output = as_auditor.stdout + as_auditor.stderr
    assert "Authorization" not in output and "timed out" not in output, output
    # Read, then refused as undecodable: the codec's reason, not Kafka's.
    assert "bad-marker" in output or "record" in output, output
