"""How long each audit chain's newest records have waited for a signed checkpoint.

A record is tamper-evident to an auditor only once a checkpoint signed by the
broker covers it (``consent.AuditChain``). Checkpoints are cut as decisions are
appended and by the idle tick, so a chain whose records wait far longer than the
checkpoint interval means the tick or the audit topic is stuck: the alert
``FedbrokerAuditCheckpointStale`` watches this (docs/operations.md).

The age is computed when Prometheus scrapes, from the chains the worker holds at
that moment, so a wedged event loop shows as a growing age rather than a frozen
gauge. A chain with nothing unsigned reads 0: an idle federation is not an alarm.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from consent import ChainHead

__all__ = ["CHECKPOINT_AGE_METRIC", "CheckpointAge", "unsigned_age"]

CHECKPOINT_AGE_METRIC = "fedbroker_broker_audit_checkpoint_age_seconds"


def unsigned_age(head: ChainHead, now: datetime) -> float:
    """Seconds the chain's records after its last checkpoint have waited (0: none wait).

    Measured from the last checkpoint, or from when this worker took the chain
    over if it has none (``AuditChain.start``).
    """
    if head.count <= head.last_checkpoint_count or head.last_checkpoint_at is None:
        return 0.0
    return max(0.0, (now - head.last_checkpoint_at).total_seconds())


class CheckpointAge(Collector):
    """A collector over the worker's live chains (chain ids are topic prefix and partition).

    Args:
        clock: the current time (default: the wall clock in UTC).
    """

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self._heads: Callable[[], Mapping[str, ChainHead]] = dict

    def track(self, heads: Callable[[], Mapping[str, ChainHead]]) -> None:
        """Read chain heads through ``heads`` at every scrape (the broker's chains)."""
        self._heads = heads

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            CHECKPOINT_AGE_METRIC,
            "Seconds the audit chain's newest records have waited for a signed checkpoint"
            " (0: every record is covered)",
            labels=["chain"],
        )
        now = self._clock()
        for chain, head in sorted(self._heads().items()):
            family.add_metric([chain], unsigned_age(head, now))
        yield family
