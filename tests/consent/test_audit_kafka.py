"""``fedbroker audit verify|subject`` against a real ``fed.audit``-style topic."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

import schemas
from consent import AuditChain, ChainHead, Decision, Reason, audit_record_to_dict
from fedbroker.cli import main
from schemas import Outcome

pytestmark = pytest.mark.kafka

T = datetime(2026, 6, 1, tzinfo=UTC)
PERSON = "nhs:1:" + "ab" * 32
OTHER = "nhs:1:" + "cd" * 32

if hasattr(schemas, "Codec"):
    WIRE = "avro"
    _codec = schemas.Codec()

    def encode(record):
        return _codec.encode(record)
else:  # until issue 4's codec lands, the hidden development wire format
    WIRE = "json"

    def encode(record):
        return json.dumps(audit_record_to_dict(record)).encode()


def chain_records(key, chain: str, n: int, *, close: bool = True):
    audit = AuditChain(ChainHead(chain), key, checkpoint_every=3)
    out = []
    for i in range(n):
        decision = Decision(
            f"dec-{chain}-{i}",
            "gm-multiple-disadvantage",
            "gmca.supporting-families",
            Outcome.ALLOWED,
            (Reason.ALLOWED,),
            (f"evt-{chain}-{i}",),
            (PERSON if i % 2 else OTHER,),
            T + timedelta(minutes=i),
        )
        out.extend(audit.append(decision))
    if close:
        out.append(audit.checkpoint(T + timedelta(hours=1), reason="shutdown"))
    return out


@pytest.fixture
def publish(kafka_bootstrap, topic_factory):
    """publish({partition: [records]}) -> a fresh two-partition topic holding them."""
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")

    def make(per_partition):
        topic = topic_factory("fed.audit")
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
        for partition, records in per_partition.items():
            for record in records:
                producer.send(
                    topic,
                    key=record.decision_id.encode(),
                    value=encode(record),
                    partition=partition,
                )
        producer.flush(timeout=30)
        return topic

    yield make
    producer.close()
    admin.close()


@pytest.fixture
def run(monkeypatch, capsys):
    def invoke(*args):
        monkeypatch.setattr(sys, "argv", ["fedbroker", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        return (code, *capsys.readouterr())

    return invoke


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    from consent import build_dev_federation

    federation = build_dev_federation(
        tmp_path_factory.mktemp("fed"), councils=["E08000006", "E08000009"]
    )
    return federation


def test_audit_verify_reads_the_topic_and_finds_tampering(
    fed, publish, run, kafka_bootstrap, tmp_path
):
    p0, p1 = (
        chain_records(fed.signing_key("broker"), "p0", 7),
        chain_records(fed.signing_key("broker"), "p1", 4),
    )
    base = ["--bootstrap", kafka_bootstrap, "--wire", WIRE, "--timeout", "20"]
    key = ["--directory", str(fed.directory_path), "--trust-anchor", str(fed.trust_anchor)]
    anchors = tmp_path / "anchors.json"

    clean = publish({0: p0, 1: p1})
    code, out, err = run(
        "audit",
        "verify",
        *base,
        "--topic",
        clean,
        *key,
        "--anchors",
        str(anchors),
        "--save-anchors",
    )
    assert code == 0, err
    assert f"{clean}: {len(p0) + len(p1)} record(s) in 2 chain(s)" in out
    assert "OK: every chain is intact" in out
    assert len(json.loads(anchors.read_text())["checkpoints"]) == 2

    altered = list(p0)
    altered[2] = dataclasses.replace(altered[2], recipients=("E08000009.revenues",))
    missing = p0[:3] + p0[4:]
    duplicated = p0[:4] + [p0[3]] + p0[4:]
    reordered = p0[:2] + [p0[3], p0[2]] + p0[4:]
    truncated = p0[:5]  # the tail, shutdown checkpoint included, is gone
    cases = {
        "altered at seq 2": altered,
        "missing at seq 3": missing,
        "duplicated at seq 3": duplicated,
        "reordered at seq 3": reordered,
        "truncated at seq 5": truncated,
    }
    broker_pub = ["--broker-key", str(fed.keys["broker"].signing.public)]
    for expected, records in cases.items():
        topic = publish({0: records, 1: p1})
        code, out, err = run(
            "audit", "verify", *base, "--topic", topic, *broker_pub, "--anchors", str(anchors)
        )
        assert code == 1, expected
        assert f"chain p0: {expected}" in err, (expected, err)
        assert "[partition 0 offset" in err or "end of chain" in err

    code, _, err = run("audit", "verify", *base, "--topic", "no-such-topic-x", *broker_pub)
    assert code == 1 and "does not exist" in err


def test_audit_subject_lists_every_decision_about_a_person(fed, publish, run, kafka_bootstrap):
    p0, p1 = (
        chain_records(fed.signing_key("broker"), "p0", 5),
        chain_records(fed.signing_key("broker"), "p1", 4),
    )
    topic = publish({0: p0, 1: p1})
    base = ["--bootstrap", kafka_bootstrap, "--wire", WIRE, "--topic", topic]
    code, out, err = run("audit", "subject", *base, "--token", PERSON)
    assert code == 0, err
    assert "4 decision(s) concerned this person" in out  # odd i: 2 in p0, 2 in p1
    assert "allowed agreement gm-multiple-disadvantage to gmca.supporting-families" in out
    code, out, _ = run("audit", "subject", *base, "--token", PERSON, "--token", OTHER, "--json")
    assert code == 0 and len(out.splitlines()) == 9
    code, _, err = run("audit", "subject", *base)
    assert code == 1 and "--token" in err
