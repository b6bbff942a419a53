"""What the demo watches while it runs: Kafka's topics and the subscribers' hand-overs.

Counts come from where an operator would look: events published (end offsets
of the councils' topics), decisions and their reasons (the audit topic),
rejections (the rejected topic), and hand-overs (the subscribers' JSON Lines
files and the demo's webhook). End-to-end latency is from the moment a slice
was dropped into a watched folder to the moment its notification was handed
over, taken for the latest-dropped event of each notification.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from fedbroker._demo._truth import Delivery
from fedbroker._demo._webhook import WebhookReceiver, delivery_from_json
from schemas import AuditKind, AuditRecord, Codec, Outcome

__all__ = ["Observer", "Snapshot"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The live table's numbers at one moment."""

    elapsed_s: float
    dropped: int
    published: int
    matched: int
    notified: Mapping[str, int]
    denied: Mapping[str, int]
    rejected: int
    delivered: int
    p50_s: float | None
    p99_s: float | None


@dataclass(slots=True)
class Observer:
    """Polls Kafka and the hand-over files; keeps every delivery for the final check."""

    bootstrap: str
    prefix: str
    councils: tuple[str, ...]
    jsonl: Mapping[str, Path]
    webhook: WebhookReceiver
    #: kafka-python security settings for the demo's own view (the cluster admin's).
    client: Mapping[str, Any] = field(default_factory=dict)
    dropped_at: dict[tuple[str, str], float] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    audit: list[AuditRecord] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    rejected: int = 0
    dropped: int = 0
    _offsets: dict[str, int] = field(default_factory=dict)
    _consumer: KafkaConsumer | None = None
    _codec: Codec = field(default_factory=Codec)
    _started: float = field(default_factory=time.monotonic)

    def _kafka(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap, enable_auto_commit=False, **self.client
            )
        return self._consumer

    def published(self) -> int:
        return self._ends("events")

    def consent_published(self) -> int:
        return self._ends("consent")

    def _ends(self, role: str) -> int:
        consumer = self._kafka()
        # Only topics that exist: asking for the partitions of one that does not
        # makes the client log an ERROR before the first event creates it.
        existing = consumer.topics()
        partitions = [
            TopicPartition(t, p)
            for c in self.councils
            if (t := f"{self.prefix}.{role}.{c}") in existing
            for p in consumer.partitions_for_topic(t) or ()
        ]
        return sum(consumer.end_offsets(partitions).values()) if partitions else 0

    def _poll_topics(self) -> None:
        consumer = self._kafka()
        wanted = (f"{self.prefix}.audit", f"{self.prefix}.rejected")
        assigned = {tp.topic for tp in consumer.assignment()}
        if assigned != set(wanted):
            existing = consumer.topics()
            found = [
                TopicPartition(t, p)
                for t in wanted
                if t in existing
                for p in consumer.partitions_for_topic(t) or ()
            ]
            if {tp.topic for tp in found} != assigned:
                consumer.assign(found)
                consumer.seek_to_beginning(*found)
                self.audit.clear()
                self.rejected = 0
        if not consumer.assignment():
            return
        while batches := consumer.poll(timeout_ms=200, max_records=5000):
            for tp, records in batches.items():
                if tp.topic.endswith(".rejected"):
                    self.rejected += len(records)
                    continue
                for record in records:
                    if record.value is not None:
                        self.audit.append(self._codec.decode_as(record.value, AuditRecord))

    def _arrived(self, when: float, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        dropped = [self.dropped_at.get(ref) for ref in delivery.refs]
        known = [d for d in dropped if d is not None]
        if known:
            self.latencies.append(max(0.0, when - max(known)))

    def _poll_handovers(self) -> None:
        now = time.time()
        for path in self.jsonl.values():
            if not path.exists():
                continue
            with path.open("rb") as handle:
                handle.seek(self._offsets.get(str(path), 0))
                data = handle.read()
            complete = data[: data.rfind(b"\n") + 1]
            self._offsets[str(path)] = self._offsets.get(str(path), 0) + len(complete)
            for line in complete.splitlines():
                if line.strip():
                    self._arrived(now, delivery_from_json(json.loads(line)))
        for when, delivery in self.webhook.take():
            self._arrived(when, delivery)

    def poll(self) -> Snapshot:
        self._poll_topics()
        self._poll_handovers()
        decisions = [a for a in self.audit if a.kind is AuditKind.DECISION]
        notified = Counter(a.agreement_id for a in decisions if a.outcome is Outcome.ALLOWED)
        denied = Counter(
            r for a in decisions if a.outcome is Outcome.DENIED for r in (a.reasons or ("?",))
        )
        lat = sorted(self.latencies)
        return Snapshot(
            elapsed_s=time.monotonic() - self._started,
            dropped=self.dropped,
            published=self.published(),
            matched=len({frozenset(a.event_ids) for a in decisions}),
            notified=dict(sorted(notified.items())),
            denied=dict(sorted(denied.items())),
            rejected=self.rejected,
            delivered=len(self.deliveries),
            p50_s=statistics.median(lat) if lat else None,
            p99_s=lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None,
        )

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
