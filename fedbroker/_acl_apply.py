"""Setting the directory's ACLs on a real cluster: the edge that talks to Kafka.

Idempotent by construction: it reads every ACL the cluster holds, lets the pure
``plan_acls`` decide what to add and what is stale, and changes only that. A
party removed from the directory therefore loses its rights on the next apply.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from consent import KafkaSecurity
from fedbroker._acls import AclEntry, Operation, Pattern, Resource, plan_acls
from fedbroker._errors import CommandError

__all__ = ["AclApplyFailed", "AclChanges", "apply_acls", "read_acls"]

logger = logging.getLogger(__name__)

_ADMIN_TIMEOUT_MS = 15000


class AclApplyFailed(CommandError):
    """The cluster refused or failed to change its ACLs."""

    reason = "acl-apply-failed"


@dataclass(frozen=True, slots=True)
class AclChanges:
    created: tuple[AclEntry, ...]
    deleted: tuple[AclEntry, ...]


@contextmanager
def _translated(what: str) -> Iterator[None]:
    from kafka.errors import KafkaError

    try:
        yield
    except KafkaError as exc:
        raise AclApplyFailed(f"{what}: {type(exc).__name__}") from exc


def _to_kafka(acl: AclEntry) -> Any:
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    return ACL(
        principal=acl.principal,
        host="*",
        operation=ACLOperation[acl.operation.name],
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(
            ResourceType[acl.resource.name],
            acl.name,
            ACLResourcePatternType[acl.pattern.name],
        ),
    )


def _from_kafka(acl: Any) -> AclEntry | None:
    """Our view of a cluster ACL, or None for a kind this project never sets."""
    try:
        return AclEntry(
            principal=acl.principal,
            resource=Resource[acl.resource_pattern.resource_type.name],
            name=acl.resource_pattern.resource_name,
            pattern=Pattern[acl.resource_pattern.pattern_type.name],
            operation=Operation[acl.operation.name],
        )
    except KeyError:
        return None


def _admin(bootstrap: str, security: KafkaSecurity) -> Any:
    from kafka import KafkaAdminClient

    with _translated(f"cannot reach Kafka at {bootstrap}"):
        return KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=_ADMIN_TIMEOUT_MS,
            **security.kafka_python(),
        )


def read_acls(bootstrap: str, security: KafkaSecurity) -> tuple[list[AclEntry], list[Any]]:
    """The cluster's ACLs in our terms, and the raw ones we do not model (kept as they are)."""
    from kafka.admin import (
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePatternFilter,
        ResourceType,
    )

    admin = _admin(bootstrap, security)
    try:
        with _translated("describing ACLs failed"):
            raw, _ = admin.describe_acls(
                ACLFilter(
                    principal=None,
                    host=None,
                    operation=ACLOperation.ANY,
                    permission_type=ACLPermissionType.ANY,
                    resource_pattern=ResourcePatternFilter(
                        ResourceType.ANY, None, ACLResourcePatternType.ANY
                    ),
                )
            )
    finally:
        admin.close()
    ours: list[AclEntry] = []
    other: list[Any] = []
    for acl in raw:
        entry = _from_kafka(acl) if acl.permission_type.name == "ALLOW" else None
        (ours.append(entry) if entry is not None else other.append(acl))
    return ours, other


def apply_acls(
    bootstrap: str,
    security: KafkaSecurity,
    desired: Iterable[AclEntry],
    *,
    keep: Iterable[str] = (),
) -> AclChanges:
    """Create the missing rules and delete the stale ones; return what changed.

    Raises:
        AclApplyFailed: Kafka could not be reached or refused a change (for
            example a principal that is not a super user).
    """
    from kafka.admin import ACLFilter

    existing, _ = read_acls(bootstrap, security)
    create, delete = plan_acls(desired, existing, keep=keep)
    admin = _admin(bootstrap, security)
    try:
        if create:
            with _translated("creating ACLs failed"):
                result = admin.create_acls([_to_kafka(a) for a in create])
            if result["failed"]:
                raise AclApplyFailed(
                    f"{len(result['failed'])} ACL(s) refused: {type(result['failed'][0]).__name__}"
                )
        if delete:
            filters = []
            for acl in delete:
                concrete = _to_kafka(acl)
                filters.append(
                    ACLFilter(
                        concrete.principal,
                        concrete.host,
                        concrete.operation,
                        concrete.permission_type,
                        concrete.resource_pattern,
                    )
                )
            with _translated("deleting stale ACLs failed"):
                for _, _, error in admin.delete_acls(filters):
                    if error.__name__ != "NoError":
                        raise AclApplyFailed(f"deleting a stale ACL failed: {error.__name__}")
    finally:
        admin.close()
    logger.info("ACLs: %d created, %d stale deleted", len(create), len(delete))
    return AclChanges(tuple(create), tuple(delete))
