"""The Kafka ACLs that the signed directory implies, derived by a pure function.

DESIGN section 3's writer and reader columns, as Kafka ACLs: a council writes
only its own event and consent topics; the broker reads those and writes the
notification, audit and rejection topics and its own internal topics; a
service reads only its own notification topic; the auditor (the combined
authority) reads the audit topic; nobody else gets anything (Kafka denies what
no ACL allows). Applying them is ``fedbroker._acl_apply``'s job; printing them
as text or Strimzi ``KafkaUser`` resources is here, because both are pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import yaml

from consent import Directory, MemberKind
from fedbroker._errors import CommandError
from fedbroker._tls import ADMIN_PRINCIPAL, NODE_PRINCIPAL

__all__ = [
    "DEFAULT_APP_ID",
    "DEFAULT_TOPIC_PREFIX",
    "AclEntry",
    "AclNames",
    "Operation",
    "Pattern",
    "Resource",
    "derive_acls",
    "format_acls",
    "plan_acls",
    "principal",
    "service_group",
    "strimzi_users",
]

DEFAULT_TOPIC_PREFIX = "fed"
DEFAULT_APP_ID = "fedbroker-broker"
STRIMZI_API = "kafka.strimzi.io/v1beta2"


class Resource(StrEnum):
    TOPIC = "topic"
    GROUP = "group"


class Pattern(StrEnum):
    LITERAL = "literal"
    PREFIXED = "prefixed"


class Operation(StrEnum):
    ALL = "All"
    CREATE = "Create"
    DESCRIBE = "Describe"
    READ = "Read"
    WRITE = "Write"


@dataclass(frozen=True, slots=True, order=True)
class AclEntry:
    """One ALLOW rule, from any host (Kafka denies whatever no rule allows)."""

    principal: str
    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation

    def __str__(self) -> str:
        return (
            f"{self.principal} {self.operation.value} "
            f"{self.resource.value}:{self.name}{'*' if self.pattern is Pattern.PREFIXED else ''}"
        )


@dataclass(frozen=True, slots=True)
class AclNames:
    """The names a deployment chose: topic prefix and the broker's Faust app id.

    The app id is also the broker's consumer group and the prefix of Faust's
    changelog and repartition topics.
    """

    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    app_id: str = DEFAULT_APP_ID


def principal(member_id: str) -> str:
    """Kafka's principal for a member: its certificate's CN (or SCRAM user) is its id."""
    return f"User:{member_id}"


def service_group(prefix: str, member_id: str) -> str:
    """The group a service may use: ``subscriber.default_group``'s name, one per service."""
    return f"{prefix}.subscriber.{member_id}"


def _rules(
    who: str, resource: Resource, name: str, pattern: Pattern, ops: Iterable[Operation]
) -> list[AclEntry]:
    return [AclEntry(principal(who), resource, name, pattern, op) for op in ops]


_R, _W, _C, _D = Operation.READ, Operation.WRITE, Operation.CREATE, Operation.DESCRIBE
_TOPIC, _GROUP = Resource.TOPIC, Resource.GROUP
_LIT, _PRE = Pattern.LITERAL, Pattern.PREFIXED


def derive_acls(directory: Directory, names: AclNames = AclNames()) -> frozenset[AclEntry]:  # noqa: B008
    """Every ACL the directory implies, and nothing else.

    The broker may also create the federation topics it reads or writes
    (``broker run`` makes them up front) but never write a council's topic.
    """
    _refuse_reserved(directory)
    prefix = names.topic_prefix
    acls: list[AclEntry] = []
    broker = directory.broker.member_id
    for council in directory.councils:
        for role in ("events", "consent"):
            topic = f"{prefix}.{role}.{council.member_id}"
            acls += _rules(council.member_id, _TOPIC, topic, _LIT, (_W, _D))
            acls += _rules(broker, _TOPIC, topic, _LIT, (_R, _D, _C))
    for topic in (f"{prefix}.audit", f"{prefix}.rejected"):
        acls += _rules(broker, _TOPIC, topic, _LIT, (_W, _D, _C))
    # A worker that takes a chain over reads its head back from the topic
    # (broker/_chain_recovery.py): without this every decision failed when secured.
    acls += _rules(broker, _TOPIC, f"{prefix}.audit", _LIT, (_R,))
    acls += _rules(broker, _TOPIC, f"{prefix}.notify.", _PRE, (_W, _D, _C))
    acls += _rules(broker, _TOPIC, f"{prefix}.broker.", _PRE, (Operation.ALL,))
    acls += _rules(broker, _TOPIC, f"{names.app_id}-", _PRE, (Operation.ALL,))
    acls += _rules(broker, _GROUP, names.app_id, _LIT, (_R, _D))
    for service in directory.services:
        topic = f"{prefix}.notify.{service.member_id}"
        acls += _rules(service.member_id, _TOPIC, topic, _LIT, (_R, _D))
        acls += _rules(
            service.member_id, _GROUP, service_group(prefix, service.member_id), _LIT, (_R,)
        )
    for auditor in directory.of_kind(MemberKind.AUTHORITY):
        acls += _rules(auditor.member_id, _TOPIC, f"{prefix}.audit", _LIT, (_R, _D))
    return frozenset(acls)


def _refuse_reserved(directory: Directory) -> None:
    """A member id is its TLS principal; the cluster's own super users' names are not free.

    Compared as Strimzi folds names (``Admin`` and ``kafka_node`` become ``admin``
    and ``kafka-node``), so no spelling of a super user's name passes.

    Raises:
        CommandError: reason ``member-id-reserved``.
    """
    reserved = {_k8s_name(name): name for name in (ADMIN_PRINCIPAL, NODE_PRINCIPAL)}
    for member_id in sorted(directory.members):
        held = reserved.get(_k8s_name(member_id))
        if held is not None:
            raise CommandError(
                f"member id '{member_id}' is reserved: as a Kafka principal it would be "
                f"the cluster's super user '{held}'",
                reason="member-id-reserved",
            )


def plan_acls(
    desired: Iterable[AclEntry], existing: Iterable[AclEntry], *, keep: Iterable[str] = ()
) -> tuple[list[AclEntry], list[AclEntry]]:
    """What to create and what to delete so ``existing`` becomes ``desired``.

    Every existing rule not desired is stale (a revoked party, a renamed topic)
    and goes, except rules of the principals in ``keep`` (the admin).
    """
    want, have, kept = set(desired), set(existing), set(keep)
    create = sorted(want - have)
    delete = sorted(a for a in have - want if a.principal not in kept)
    return create, delete


def format_acls(acls: Iterable[AclEntry]) -> str:
    """One line per rule, grouped by principal, in a stable order."""
    return "\n".join(str(a) for a in sorted(acls))


def _k8s_name(member_id: str) -> str:
    return re.sub(r"[^a-z0-9.-]", "-", member_id.lower()).strip("-.")


def strimzi_users(
    acls: Iterable[AclEntry], *, cluster: str = "fedbroker", namespace: str | None = None
) -> str:
    """Strimzi ``KafkaUser`` resources (mutual TLS, simple authorisation), one per principal.

    Strimzi names the TLS principal after the resource (``CN=<name>``), and
    resource names are lower-case DNS labels, so ``E08000003`` becomes
    ``e08000003``; the rules travel with the user, so nothing else changes.
    """
    by_user: dict[str, dict[tuple[str, str, str], list[str]]] = {}
    for acl in sorted(acls):
        member = acl.principal.removeprefix("User:")
        key = (acl.resource.value, acl.name, "prefix" if acl.pattern is _PRE else "literal")
        by_user.setdefault(member, {}).setdefault(key, []).append(acl.operation.value)
    named: dict[str, str] = {}
    for member in sorted(by_user):
        # the resource name is the TLS principal: two members folded to one name
        # would share an identity, and each could read the other's notifications
        first = named.setdefault(_k8s_name(member), member)
        if first != member:
            raise CommandError(
                f"members {first} and {member} would share the Kafka user {_k8s_name(member)}"
            )
    documents: list[Mapping[str, Any]] = []
    for member, rules in sorted(by_user.items()):
        metadata: dict[str, Any] = {
            "name": _k8s_name(member),
            "labels": {"strimzi.io/cluster": cluster},
            "annotations": {"fedbroker/member-id": member},
        }
        if namespace:
            metadata["namespace"] = namespace
        documents.append(
            {
                "apiVersion": STRIMZI_API,
                "kind": "KafkaUser",
                "metadata": metadata,
                "spec": {
                    "authentication": {"type": "tls"},
                    "authorization": {
                        "type": "simple",
                        "acls": [
                            {
                                "resource": {"type": kind, "name": name, "patternType": pattern},
                                "operations": sorted(ops),
                                "host": "*",
                            }
                            for (kind, name, pattern), ops in sorted(rules.items())
                        ],
                    },
                },
            }
        )
    return yaml.safe_dump_all(documents, sort_keys=False)
