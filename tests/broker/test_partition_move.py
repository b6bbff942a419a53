"""Audit chains survive partition moves (issue 15 item 4).

Three workers share the routed partitions, so each holds one chain. One is
stopped while councils publish and started again: its chain moves to another
worker and back (more than once, as the group rebalances twice). A head
cached for the life of a process would append from a stale head after the
move and fork the chain; recovered on assignment from the audit topic, every
chain links, verifies, and records each decision once.
"""

from __future__ import annotations

import subprocess
from collections import Counter

import pytest

from broker import DEFAULT_PARTITIONS
from consent import verify_audit
from schemas import AuditKind
from tests.broker.workers import (
    audit_records,
    behind,
    publish_together,
    settled,
    split_extract,
    start_worker,
    stop_worker,
    stop_workers,
    until,
)
from tests.connectors.conftest import COUNCILS

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(420)]

WORKERS = 3
PARTS = 3


def test_a_worker_stopped_and_started_under_traffic_leaves_unforked_verified_chains(
    council_factory, federation, synthetic, kafka_bootstrap, topic_factory, tmp_path
):
    prefix, group = topic_factory("fed"), topic_factory("broker")
    setups = {c: council_factory(c, prefix=prefix) for c in COUNCILS}
    parts = {c: split_extract(synthetic.files[c], tmp_path / f"parts-{c}", PARTS)
             for c in COUNCILS}  # fmt: skip

    def start(n: int, life: int = 0) -> subprocess.Popen[bytes]:
        return start_worker(
            kafka_bootstrap, federation, group=group, prefix=prefix,
            data_dir=tmp_path / f"data-{n}", log=tmp_path / f"worker-{n}-{life}.log",
            options=["--threshold", "0.8"],
        )  # fmt: skip

    def publish(part: int) -> list[subprocess.Popen[bytes]]:
        return publish_together(setups, {c: parts[c][part] for c in COUNCILS})

    workers = {n: start(n) for n in range(WORKERS)}
    try:
        for publisher in publish(0):
            assert publisher.wait(timeout=240) == 0
        before = len(audit_records(kafka_bootstrap, prefix))
        publishing = publish(1)
        # Stop a worker once decisions on this part are being made, under traffic.
        until(lambda: len(audit_records(kafka_bootstrap, prefix)) > before
              or not behind(kafka_bootstrap, group, prefix), "decisions were audited")  # fmt: skip
        stop_worker(workers[0])  # a clean stop: it hands its partitions over
        workers[0] = start(0, life=1)  # the same worker again, on its own state folder
        for publisher in publishing + publish(2):
            assert publisher.wait(timeout=240) == 0
        settled(kafka_bootstrap, group, prefix, timeout=300)
    finally:
        stop_workers(workers.values())
    audit = audit_records(kafka_bootstrap, prefix)
    report = verify_audit(audit, federation.load().member("broker").signing_key)
    assert report.ok, [str(p) for p in report.problems]
    links = Counter((r.chain, r.seq) for r in audit)
    assert max(links.values()) == 1, links.most_common(3)  # a fork: two records at one place
    decided = Counter((r.chain, r.decision_id) for r in audit if r.kind is not AuditKind.CHECKPOINT)
    assert decided and max(decided.values()) == 1, decided.most_common(3)
    assert len({r.chain for r in audit}) == DEFAULT_PARTITIONS, "a chain per routed partition"
