"""The ACLs the directory implies, checked as an attacker would probe them (pure tier).

``allowed`` below evaluates a rule set the way Kafka's StandardAuthorizer does
for ALLOW rules (literal or prefixed names, ``All`` covers every operation,
``Read``/``Write`` imply ``Describe``, and nothing is allowed without a rule),
so each test asks a question about a party's power rather than about rules.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from consent import DevFederation, build_dev_federation, load_directory
from fedbroker._acls import (
    AclEntry,
    AclNames,
    Operation,
    Pattern,
    Resource,
    derive_acls,
    format_acls,
    plan_acls,
    service_group,
    strimzi_users,
)
from subscriber import default_group

COUNCILS = ("E08000001", "E08000002", "E08000003")
SERVICES = {"svc-a": "E08000001", "svc-b": "E08000002", "gmca.unit": None}


def allowed(
    acls: frozenset[AclEntry], who: str, op: Operation, resource: Resource, name: str
) -> bool:
    implied = {Operation.DESCRIBE: {Operation.READ, Operation.WRITE}}
    for acl in acls:
        if acl.principal != f"User:{who}" or acl.resource is not resource:
            continue
        if acl.pattern is Pattern.LITERAL and acl.name != name:
            continue
        if acl.pattern is Pattern.PREFIXED and not name.startswith(acl.name):
            continue
        if acl.operation in (op, Operation.ALL) or acl.operation in implied.get(op, ()):
            return True
    return False


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> DevFederation:
    return build_dev_federation(
        tmp_path_factory.mktemp("fed"), councils=COUNCILS, services=SERVICES
    )


@pytest.fixture(scope="module")
def acls(federation: DevFederation) -> frozenset[AclEntry]:
    return derive_acls(federation.load())


def everyone(federation: DevFederation) -> list[str]:
    return [*federation.councils, *federation.services, "broker", "gmca", "intruder"]


def test_a_council_writes_only_its_own_two_topics(federation, acls):
    topics = [f"fed.{r}.{c}" for c in COUNCILS for r in ("events", "consent")]
    topics += ["fed.audit", "fed.rejected", "fed.notify.svc-a", "fed.broker.routed"]
    for council in COUNCILS:
        writable = {t for t in topics if allowed(acls, council, Operation.WRITE, Resource.TOPIC, t)}
        assert writable == {f"fed.events.{council}", f"fed.consent.{council}"}
        readable = {t for t in topics if allowed(acls, council, Operation.READ, Resource.TOPIC, t)}
        assert readable == set()


def test_only_the_broker_writes_audit_rejected_and_notifications(federation, acls):
    for topic in ("fed.audit", "fed.rejected", "fed.notify.svc-a", "fed.notify.new-service"):
        writers = {
            p
            for p in everyone(federation)
            if allowed(acls, p, Operation.WRITE, Resource.TOPIC, topic)
        }
        assert writers == {"broker"}, topic


def test_a_service_reads_only_its_own_notifications_with_its_own_group(federation, acls):
    for service in SERVICES:
        readable = {
            s
            for s in SERVICES
            if allowed(acls, service, Operation.READ, Resource.TOPIC, f"fed.notify.{s}")
        }
        assert readable == {service}
        groups = {
            g for g in [*(service_group("fed", s) for s in SERVICES), *SERVICES, "fedbroker-broker"]
            if allowed(acls, service, Operation.READ, Resource.GROUP, g)
        }  # fmt: skip
        assert groups == {service_group("fed", service)} == {default_group("fed", service)}
        assert not allowed(acls, service, Operation.READ, Resource.TOPIC, "fed.audit")
        assert not allowed(acls, service, Operation.READ, Resource.TOPIC, "fed.events.E08000001")


def test_the_broker_reads_sources_and_owns_its_internal_topics_and_group(acls):
    for council in COUNCILS:
        for role in ("events", "consent"):
            topic = f"fed.{role}.{council}"
            assert allowed(acls, "broker", Operation.READ, Resource.TOPIC, topic)
            assert not allowed(acls, "broker", Operation.WRITE, Resource.TOPIC, topic)
    for internal in ("fed.broker.routed", "fedbroker-broker-token-state-changelog"):
        assert allowed(acls, "broker", Operation.CREATE, Resource.TOPIC, internal)
        assert allowed(acls, "broker", Operation.WRITE, Resource.TOPIC, internal)
        assert allowed(acls, "broker", Operation.READ, Resource.TOPIC, internal)
    assert allowed(acls, "broker", Operation.READ, Resource.GROUP, "fedbroker-broker")
    assert not allowed(acls, "broker", Operation.READ, Resource.GROUP, "fed.subscriber.svc-a")
    assert not allowed(acls, "broker", Operation.READ, Resource.TOPIC, "fed.notify.svc-a")


def test_the_broker_reads_its_own_audit_chains_back_and_no_other_output(acls):
    """A worker taking a chain over recovers its head from the topic (effects once)."""
    assert allowed(acls, "broker", Operation.READ, Resource.TOPIC, "fed.audit")
    assert not allowed(acls, "broker", Operation.READ, Resource.TOPIC, "fed.rejected")


def test_the_auditor_reads_the_audit_topic_and_nothing_else(acls):
    assert allowed(acls, "gmca", Operation.READ, Resource.TOPIC, "fed.audit")
    for topic in ("fed.events.E08000001", "fed.notify.svc-a", "fed.rejected"):
        assert not allowed(acls, "gmca", Operation.READ, Resource.TOPIC, topic)
    assert not any(a.operation is not Operation.READ and a.operation is not Operation.DESCRIBE
                   for a in acls if a.principal == "User:gmca")  # fmt: skip


def test_no_rule_for_anyone_outside_the_directory_and_no_wildcards(federation, acls):
    members = {f"User:{m}" for m in federation.load().members}
    assert {a.principal for a in acls} <= members
    assert all(a.name not in ("", "*") for a in acls)
    assert all("*" not in a.principal for a in acls)


def test_names_follow_the_prefix_and_app_id(federation):
    custom = derive_acls(federation.load(), AclNames(topic_prefix="t1", app_id="app9"))
    assert allowed(custom, "E08000001", Operation.WRITE, Resource.TOPIC, "t1.events.E08000001")
    assert not allowed(custom, "E08000001", Operation.WRITE, Resource.TOPIC, "fed.events.E08000001")
    assert allowed(custom, "broker", Operation.READ, Resource.GROUP, "app9")
    assert allowed(custom, "broker", Operation.WRITE, Resource.TOPIC, "app9-x-changelog")


def _resign_without(federation: DevFederation, member_id: str, tmp_path: Path) -> Path:
    document = yaml.safe_load(federation.document_path.read_text())
    document["members"] = [m for m in document["members"] if m["id"] != member_id]
    for agreement in document["agreements"]:
        agreement["controllers"] = [c for c in agreement["controllers"] if c != member_id]
    document["agreements"] = [a for a in document["agreements"] if a["controllers"]]
    document["serial"] = 2
    from consent import sign_directory

    signed = tmp_path / "directory.signed"
    signed.write_bytes(sign_directory(yaml.safe_dump(document), federation.signing_key("gmca")))
    return signed


def test_a_revoked_council_loses_every_right_on_the_next_apply(federation, acls, tmp_path):
    revoked = _resign_without(federation, "E08000003", tmp_path)
    after = derive_acls(
        load_directory(revoked, trust_anchor=federation.trust_anchor, now=datetime.now(UTC))
    )
    admin = AclEntry("User:admin", Resource.TOPIC, "x", Pattern.LITERAL, Operation.ALL)
    create, delete = plan_acls(after, {*acls, admin}, keep=["User:admin"])
    assert create == []
    # The council's rights go, and so do the broker's on the council's topics.
    assert {a.principal for a in delete} == {"User:E08000003", "User:broker"}
    assert {a.name for a in delete} == {"fed.events.E08000003", "fed.consent.E08000003"}
    assert {a.operation for a in delete if a.principal == "User:E08000003"} == {
        Operation.WRITE,
        Operation.DESCRIBE,
    }
    assert admin not in delete


def test_planning_an_applied_set_changes_nothing(acls):
    assert plan_acls(acls, acls) == ([], [])
    create, delete = plan_acls(acls, [])
    assert set(create) == set(acls) and delete == []


def test_text_format_is_one_sorted_line_per_rule(acls):
    lines = format_acls(acls).splitlines()
    assert len(set(lines)) == len(acls)
    assert lines == format_acls(set(reversed(sorted(acls)))).splitlines()  # stable order
    assert "User:E08000001 Write topic:fed.events.E08000001" in lines
    assert "User:broker Write topic:fed.notify.*" in lines


def test_strimzi_users_carry_the_same_rules(federation, acls):
    documents = list(yaml.safe_load_all(strimzi_users(acls, cluster="gm", namespace="fed")))
    assert {d["kind"] for d in documents} == {"KafkaUser"}
    by_member = {d["metadata"]["annotations"]["fedbroker/member-id"]: d for d in documents}
    assert set(by_member) == {a.principal.removeprefix("User:") for a in acls}
    for member, document in by_member.items():
        name = document["metadata"]["name"]
        assert name == name.lower() and len(name) <= 63 and name[0].isalnum()
        assert document["metadata"]["labels"] == {"strimzi.io/cluster": "gm"}
        assert document["spec"]["authentication"] == {"type": "tls"}
        rules = {
            (r["resource"]["type"], r["resource"]["name"], r["resource"]["patternType"], op)
            for r in document["spec"]["authorization"]["acls"]
            for op in r["operations"]
        }
        expected = {
            (a.resource.value, a.name, "prefix" if a.pattern is Pattern.PREFIXED else "literal",
             a.operation.value)
            for a in acls if a.principal == f"User:{member}"
        }  # fmt: skip
        assert rules == expected


def test_two_members_folded_to_one_strimzi_user_are_refused_not_merged():
    """'a-b' and 'a_b' both become the user (and TLS principal) 'a-b' (second hostile review)."""
    from fedbroker._errors import CommandError

    rules = [
        AclEntry(f"User:{member}", Resource.TOPIC, f"fed.notify.{member}", Pattern.LITERAL,
                 Operation.READ)
        for member in ("gmca.supporting-families", "gmca.supporting_families")
    ]  # fmt: skip
    with pytest.raises(CommandError, match="share the Kafka user"):
        strimzi_users(rules)


@pytest.mark.parametrize("member_id", ["kafka-node", "admin", "Admin", "kafka_node"])
def test_a_member_named_as_a_kafka_super_user_is_refused(tmp_path, member_id):
    """A directory member's id is its TLS principal (Strimzi lower-cases it and folds '_'
    to '-'): one named like the cluster's admin or its nodes would be issued a super
    user's certificate, with every right on every topic."""
    from fedbroker._errors import CommandError
    from fedbroker._provision import provision

    federation = build_dev_federation(
        tmp_path / "fed", councils=COUNCILS[:1], services={member_id: None}
    )
    loaded = federation.load()
    with pytest.raises(CommandError, match="reserved"):
        strimzi_users(derive_acls(loaded))

    class Cluster:
        issued: list[str] = []

        def credentials(self, principal):
            self.issued.append(principal)

    cluster = Cluster()
    with pytest.raises(CommandError, match="reserved"):
        provision(cluster, loaded, AclNames())  # type: ignore[arg-type]
    assert cluster.issued == []  # no certificate for anyone before the refusal
