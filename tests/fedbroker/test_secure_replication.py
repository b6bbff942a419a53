"""Replication follows the cluster, and the broker's Faust app gets the party's credentials."""

from __future__ import annotations

import faust
import pytest
from kafka import KafkaAdminClient

from broker import BrokerError
from broker._kafka_client import cluster_replication, faust_credentials, replication_configs
from consent import KafkaSecurity
from fedbroker._tls import LocalPki
from tests.ports import kafka_port


def test_three_copies_need_two_in_sync_and_fewer_ask_nothing():
    assert replication_configs(3) == {"min.insync.replicas": "2"}
    assert replication_configs(1) == {} and replication_configs(2) == {}


def test_faust_gets_tls_or_scram_credentials_and_none_when_unsecured(tmp_path):
    files = LocalPki(tmp_path).ensure_client("broker")
    mtls = KafkaSecurity(ca_file=files.ca_file, cert_file=files.cert_file, key_file=files.key_file)
    assert faust_credentials(KafkaSecurity()) is None
    credentials = faust_credentials(mtls)
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.protocol.value == "SSL"
    (tmp_path / "pw").write_text("pw")
    scram = KafkaSecurity.from_mapping(
        {"ca_file": str(files.ca_file), "sasl_username": "broker", "sasl_password_file": "pw"},
        base=tmp_path,
    )
    sasl = faust_credentials(scram)
    assert isinstance(sasl, faust.SASLCredentials)
    assert sasl.protocol.value == "SASL_SSL" and sasl.mechanism.value == "SCRAM-SHA-512"
    assert "pw" not in repr(sasl).replace("password", "")


@pytest.mark.kafka
def test_replication_is_detected_from_the_cluster_and_a_larger_request_refused(kafka_bootstrap):
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        brokers = len(admin.describe_cluster()["brokers"])
    finally:
        admin.close()
    assert cluster_replication(kafka_bootstrap, KafkaSecurity(), None) == min(brokers, 3)
    assert cluster_replication(kafka_bootstrap, KafkaSecurity(), 1) == 1
    with pytest.raises(BrokerError) as refused:
        cluster_replication(kafka_bootstrap, KafkaSecurity(), brokers + 1)
    assert refused.value.reason == "replication"


TRIO_PORT = kafka_port("secure-replication")


@pytest.mark.kafka
@pytest.mark.slow
def test_on_three_nodes_the_broker_creates_every_topic_with_three_copies(fedbroker_home, tmp_path):
    from kafka.admin import ConfigResource, ConfigResourceType

    from broker import BrokerSettings, build_app
    from consent import build_dev_federation
    from fedbroker import KafkaCluster

    cluster = KafkaCluster(3, TRIO_PORT, fedbroker_home)
    cluster.up(fresh=True)
    try:
        federation = build_dev_federation(tmp_path / "fed", councils=["E08000001", "E08000002"])
        settings = BrokerSettings(
            bootstrap=cluster.bootstrap,
            directory=federation.directory_path,
            trust_anchor=federation.trust_anchor,
            signing_key=federation.keys["broker"].signing.private,
            topic_prefix="rep",
            app_id="rep-broker",
            data_dir=tmp_path / "data",
            store="memory://",
        )
        app = build_app(settings)
        assert app.conf.topic_replication_factor == 3  # Faust's changelogs too
        admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
        try:
            created = [t for t in admin.list_topics() if t.startswith("rep.")]
            assert "rep.audit" in created and "rep.events.E08000001" in created
            for topic in admin.describe_topics(created):
                copies = {len(p["replica_nodes"]) for p in topic["partitions"]}
                assert copies == {3}, topic
            configs = admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, "rep.events.E08000001")]
            )
            setting = configs["topic"]["rep.events.E08000001"]["min.insync.replicas"]
            assert (setting["value"] if isinstance(setting, dict) else setting) == "2"
        finally:
            admin.close()
        with pytest.raises(BrokerError):
            cluster_replication(cluster.bootstrap, KafkaSecurity(), 4)
    finally:
        cluster.down()
