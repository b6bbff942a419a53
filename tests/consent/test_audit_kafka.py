"""``fedbroker audit verify|subject`` against a real ``fed.audit``-style topic."""

from __future__ import annotations

import dataclasses
import io
import json
import sys
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

import schemas
from consent import (
    AuditChain,
    ChainHead,
    Decision,
    Reason,
    audit_record_hash,
    audit_record_to_dict,
    generate_signing_key,
)
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


@pytest.fixture(autouse=True)
def state_home(monkeypatch, tmp_path):
    """The default anchors file lives here: never in the real user's state folder."""
    monkeypatch.delenv("FEDBROKER_AUDIT_ANCHORS", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state"


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
    )
    assert code == 0, err
    assert f"{clean}: {len(p0) + len(p1)} record(s) in 2 chain(s)" in out
    assert "OK: every chain is intact" in out
    assert "anchors advanced for 2 chain(s)" in out
    (kept,) = json.loads(anchors.read_text())["keys"].values()
    assert sorted(kept) == ["p0", "p1"]

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


def test_audit_verify_fails_a_rewritten_tail_a_cut_chain_and_a_chain_with_no_checkpoint(
    fed, publish, run, kafka_bootstrap, state_home
):
    """Through real Kafka, with the default anchors file and no flag (issue 11, item 4)."""
    key = fed.signing_key("broker")
    base = ["--bootstrap", kafka_bootstrap, "--wire", WIRE, "--timeout", "20"]
    broker_pub = ["--broker-key", str(fed.keys["broker"].signing.public)]
    # an allowed decision after the last checkpoint, rewritten to denied and relinked
    open_tail = same_time_chain(key, 7, close=False)
    assert open_tail[-1].outcome is Outcome.ALLOWED and open_tail[-2].kind.value == "checkpoint"
    forged = dataclasses.replace(open_tail[-1], outcome=Outcome.DENIED, reasons=("objected",))
    open_tail[-1] = dataclasses.replace(forged, record_hash=audit_record_hash(forged))
    code, out, err = run("audit", "verify", *base, "--topic", publish({0: open_tail}), *broker_pub)
    assert code == 1 and "chain p0: altered at seq 8" in err, err  # the forger cannot sign it
    assert "not signed by the broker key" in err
    assert "anchors advanced" not in out  # a chain with a forged record moves no anchor

    full = same_time_chain(key, 7)  # checkpoints at seqs 3, 7 and the shutdown one at 9
    clean = publish({0: full})
    code, out, err = run("audit", "verify", *base, "--topic", clean, *broker_pub)
    assert code == 0, err
    default = state_home / "fedbroker" / "audit-anchors.json"
    assert default.exists() and "anchors advanced for 1 chain(s)" in out  # to seq 9

    # the chain cut back to its first checkpoint: consistent alone, caught by the anchor
    cut = full[:4]
    code, out, err = run("audit", "verify", *base, "--topic", publish({0: cut}), *broker_pub)
    assert code == 1 and "chain p0: truncated at seq 4" in err, err
    assert "tail cut" in err

    # a chain no checkpoint vouches for, however fresh its records
    fabricated = AuditChain(ChainHead("p1"), key, checkpoint_every=100)
    now = datetime.now(UTC)
    records = [r for i in range(3) for r in fabricated.append(_decision(i, now))]
    code, out, err = run(
        "audit", "verify", *base, "--topic", publish({0: full, 1: records}), *broker_pub
    )
    assert code == 1 and "chain p1: no-checkpoint at seq 0" in err, err
    assert "no checkpoint" in out

    # a young tail is pending: OK, unless --strict
    young = AuditChain(ChainHead("p1"), key, checkpoint_every=2)
    records = [r for i in range(3) for r in young.append(_decision(i, now))]
    topic = publish({0: full, 1: records})
    code, out, err = run("audit", "verify", *base, "--topic", topic, *broker_pub)
    assert code == 0, err
    assert "pending: a checkpoint is due by" in out
    code, out, err = run("audit", "verify", *base, "--topic", topic, *broker_pub, "--strict")
    assert code == 1 and "chain p1: pending at seq 3" in err, err


def same_time_chain(key, n: int, *, close: bool = True):
    audit = AuditChain(ChainHead("p0"), key, checkpoint_every=3)
    out = [r for i in range(n) for r in audit.append(_decision(i, T))]
    return [*out, audit.checkpoint(T, reason="shutdown")] if close else out


def _decision(i: int, at: datetime) -> Decision:
    return Decision(
        f"dec-x-{i}",
        "gm-multiple-disadvantage",
        "gmca.supporting-families",
        Outcome.ALLOWED,
        (Reason.ALLOWED,),
        (f"evt-x-{i}",),
        (OTHER,),
        at,
    )


def test_audit_subject_reads_the_persons_details_from_stdin_never_flags(
    fed, publish, run, kafka_bootstrap, tmp_path, monkeypatch
):
    from connectors import Tokeniser, generate_linkage_key, normalise_identity

    details = "given_name: Ann\nfamily_name: Example\ndate_of_birth: 1980-02-03\n"
    details += "nhs_number: 943 476 5919\n"
    linkage = generate_linkage_key(1)
    keys = tmp_path / "linkage.json"
    keys.write_text(json.dumps({"1": linkage.secret.hex()}))
    identity = normalise_identity(
        {
            "given_name": "Ann",
            "family_name": "Example",
            "date_of_birth": "1980-02-03",
            "nhs_number": "9434765919",
        }
    )
    person = Tokeniser((linkage,)).tokenise(identity).tokens[0].key()
    audit = AuditChain(ChainHead("p0"), fed.signing_key("broker"), checkpoint_every=10)
    records = [
        *audit.append(_decision(0, T)),
        *audit.append(dataclasses.replace(_decision(1, T), subject_tokens=(person,))),
    ]
    topic = publish({0: records})
    base = ["--bootstrap", kafka_bootstrap, "--wire", WIRE, "--topic", topic]

    monkeypatch.setattr(sys, "stdin", io.StringIO(details))
    code, out, err = run("audit", "subject", *base, "--linkage-keys", str(keys))
    assert code == 0, err
    assert "1 decision(s) concerned this person" in out and "dec-x-1" in out
    as_file = tmp_path / "person.json"
    as_file.write_text(json.dumps({"nhs_number": "9434765919"}))
    code, out, err = run(
        "audit", "subject", *base, "--linkage-keys", str(keys), "--details", str(as_file)
    )
    assert code == 0 and "1 decision(s) concerned this person" in out, err
    # the old flags are gone: personal data on a command line is refused by click itself
    for flag in ("--given-name", "--family-name", "--date-of-birth", "--nhs-number"):
        code, _, err = run("audit", "subject", *base, flag, "Ann")
        assert code == 2 and "No such option" in err and "Ann" not in err


def test_audit_verify_refuses_an_older_directory_than_it_accepted_before(
    fed, publish, run, kafka_bootstrap, tmp_path
):
    import yaml

    from consent import sign_directory

    doc = yaml.safe_load(fed.document_path.read_text())
    doc["serial"] = 2
    newer = tmp_path / "directory-2.signed"
    newer.write_bytes(sign_directory(yaml.safe_dump(doc, sort_keys=False), fed.signing_key("gmca")))
    topic = publish({0: same_time_chain(fed.signing_key("broker"), 4)})
    base = ["--bootstrap", kafka_bootstrap, "--wire", WIRE, "--topic", topic]
    anchor = ["--trust-anchor", str(fed.trust_anchor)]
    code, out, err = run("audit", "verify", *base, "--directory", str(newer), *anchor)
    assert code == 0, err
    code, _, err = run("audit", "verify", *base, "--directory", str(fed.directory_path), *anchor)
    assert code == 1 and "[directory-rolled-back]" in err, err


def test_a_message_that_is_no_audit_record_is_reported_where_it_is_and_the_rest_still_answers(
    fed, publish, run, kafka_bootstrap
):
    """One junk message on an append-only, never-deleted topic must not blind the auditor.

    It used to end both commands with a decode error: no chain verified, no
    anchor advanced and no subject-access request answered, for as long as
    the topic is kept (for ever). Attack round 2.
    """
    key = fed.signing_key("broker")
    topic = publish({0: chain_records(key, "p0", 4)})
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    producer.send(topic, key=b"junk", value=b"\xc3\x01not an audit record", partition=1)
    producer.flush(timeout=30)
    producer.close()
    base = ["--bootstrap", kafka_bootstrap, "--wire", WIRE, "--timeout", "20", "--topic", topic]
    broker_pub = ["--broker-key", str(fed.keys["broker"].signing.public)]

    code, out, err = run("audit", "verify", *base, *broker_pub)
    assert code == 1, err
    assert "not an audit record [partition 1 offset 0]" in err, err
    assert "chain p0: 7/7 verified" in out, out  # 4 decisions, 3 checkpoints
    assert "anchors advanced for 1 chain(s)" in out  # the intact chain's checkpoint

    code, out, err = run("audit", "subject", *base, "--token", PERSON)
    assert code == 0, err
    assert "2 decision(s) concerned this person" in out
    assert "1 message(s) that are not audit records" in err and "partition 1 offset 0" in err


def test_audit_subject_with_the_broker_key_flags_a_decision_the_broker_never_recorded(
    fed, publish, run, kafka_bootstrap
):
    """A subject-access answer is evidence: each listed record is checked (attack round 2).

    Whoever can write ``fed.audit`` can append a decision naming the person (a
    disclosure that never happened) or relabel one; the broker signs every
    record, so with its key each listed decision is proved or flagged.
    """
    key = fed.signing_key("broker")
    genuine = chain_records(key, "p0", 4)
    invented = AuditChain(ChainHead("p9"), generate_signing_key(), checkpoint_every=100)
    forged = invented.append(
        Decision("dec-forged", "gm-multiple-disadvantage", "gmca.someone-else",
                 Outcome.ALLOWED, (Reason.ALLOWED,), ("evt-f",), (PERSON,), T)
    )  # fmt: skip
    topic = publish({0: genuine, 1: forged})
    base = ["--bootstrap", kafka_bootstrap, "--wire", WIRE, "--topic", topic]
    broker_pub = ["--broker-key", str(fed.keys["broker"].signing.public)]

    code, out, err = run("audit", "subject", *base, "--token", PERSON, *broker_pub)
    assert code == 1, err
    assert "3 decision(s) concerned this person" in out
    assert "NOT SIGNED BY THE BROKER" in out and "dec-forged" in out
    assert out.count("NOT SIGNED BY THE BROKER") == 1
    assert "1 listed record(s) are not signed by the broker" in err
    code, out, err = run("audit", "subject", *base, "--token", PERSON, *broker_pub, "--json")
    assert code == 1
    signed = {json.loads(line)["decision_id"]: json.loads(line)["broker_signed"] for line in
              out.splitlines()}  # fmt: skip
    assert signed == {"dec-p0-1": True, "dec-p0-3": True, "dec-forged": False}
    genuine_only = publish({0: genuine})
    code, out, err = run(
        "audit", "subject", "--bootstrap", kafka_bootstrap, "--wire", WIRE,
        "--topic", genuine_only, "--token", PERSON, *broker_pub,
    )  # fmt: skip
    assert code == 0 and "NOT SIGNED" not in out, err


def test_audit_subject_with_the_broker_key_says_when_a_record_was_deleted_from_a_chain(
    fed, publish, run, kafka_bootstrap
):
    """Attack: delete the person's allowed decision from ``fed.audit`` before they ask.

    Every record left is the broker's and signed, so checking each listed record
    finds nothing: the answer was one disclosure short, with exit 0. With the
    broker's key the chains read are verified too, and a gap in any of them
    (the deleted record could have named anyone) makes the answer incomplete.
    """
    key = fed.signing_key("broker")
    records = chain_records(key, "p0", 5)
    deleted = next(r for r in records if r.decision_id == "dec-p0-1")
    topic = publish({0: [r for r in records if r is not deleted]})
    base = ["--bootstrap", kafka_bootstrap, "--wire", WIRE, "--topic", topic]
    broker_pub = ["--broker-key", str(fed.keys["broker"].signing.public)]

    code, out, err = run("audit", "subject", *base, "--token", PERSON, *broker_pub)
    assert code == 1, (out, err)
    assert "1 decision(s) concerned this person" in out
    assert "chain p0: missing at seq 1" in err
    assert "may be incomplete" in err
    code, out, err = run("audit", "subject", *base, "--token", PERSON, *broker_pub, "--json")
    assert code == 1 and "chain p0: missing at seq 1" in err


def test_audit_verify_and_subject_take_the_brokers_previous_key_after_a_rotation(
    fed, publish, run, kafka_bootstrap, tmp_path
):
    """The old key's chains verify under it; without it they are not the broker's."""
    from consent import public_key_b64

    old = generate_signing_key()
    old_pub = tmp_path / "old-broker.pub"
    old_pub.write_text("ed25519:" + public_key_b64(old.public_key()) + "\n")
    topic = publish({0: chain_records(old, "p0/old", 3),
                     1: chain_records(fed.signing_key("broker"), "p1/new", 3)})  # fmt: skip
    base = ["--bootstrap", kafka_bootstrap, "--wire", WIRE, "--topic", topic]
    current = ["--broker-key", str(fed.keys["broker"].signing.public)]
    anchors = ["--anchors", str(tmp_path / "anchors.json")]

    code, _, err = run("audit", "verify", *base, *current, *anchors)
    assert code == 1 and "chain p0/old" in err and "chain p1/new" not in err, err
    code, out, err = run("audit", "verify", *base, *current, *anchors,
                         "--previous-broker-key", str(old_pub))  # fmt: skip
    assert code == 0, err
    assert "anchors advanced for 1 chain(s)" in out  # p1/new's moved on the first run
    kept = json.loads((tmp_path / "anchors.json").read_text())["keys"]
    assert {c for chains in kept.values() for c in chains} == {"p0/old", "p1/new"}
    assert len(kept) == 2, "each chain's anchor is kept under the key that signed it"
    code, out, err = run("audit", "verify", *base, *current, *anchors,
                         "--previous-broker-key", str(old_pub))  # fmt: skip
    assert code == 0 and "anchors advanced" not in out, err  # each kept under its own key
    code, out, err = run("audit", "subject", *base, "--token", PERSON, *current,
                         "--previous-broker-key", str(old_pub))  # fmt: skip
    assert code == 0 and "NOT SIGNED" not in out, err
    assert "2 decision(s) concerned this person" in out
