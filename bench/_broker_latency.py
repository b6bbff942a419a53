"""The bench's latency run: one worker, events offered at a fixed rate, a recipient timing them.

Each event is re-signed as it is published (its ``published_at`` is the moment
it is offered); a subscriber reads the match topics as a recipient service
would and notes when each notification arrives.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer

from bench._broker_data import COUNCILS, BenchData, notify_topics, open_notification, resigned
from bench._broker_kafka import (
    ProcessUsage,
    broker_worker,
    kafka_pid,
    metric_counts,
    new_prefix,
    source_topics,
    watch,
)
from bench._broker_report import Latency
from bench._security import bench_security, client_config
from schemas import Codec

__all__ = ["run_latency"]


class _Subscriber(threading.Thread):
    """Reads the match topics as a recipient service would, noting when each arrives."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        super().__init__(daemon=True)
        # A long poll delays nothing (Kafka answers as soon as a record is there);
        # polling every 5 ms, as before, cost the bench's process and Kafka CPU
        # the worker then lacked on the same two cores.
        self.consumer = KafkaConsumer(
            *topics, bootstrap_servers=bootstrap, group_id=f"bench-sub-{uuid.uuid4().hex[:6]}",
            auto_offset_reset="earliest", fetch_max_wait_ms=500, enable_auto_commit=False,
            **client_config(),
        )  # fmt: skip
        self.seen: list[tuple[float, bytes]] = []
        self.stopping = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                batch = self.consumer.poll(timeout_ms=50)
                now = time.time()
                if self.consumer.assignment():
                    self.ready.set()
                for records in batch.values():
                    self.seen.extend((now, r.value) for r in records)
        finally:
            self.consumer.close()


def run_latency(
    data: BenchData, bootstrap: str, work: Path, partitions: int, threshold: float,
    rate: float, seconds: float,
) -> Latency:  # fmt: skip
    prefix = new_prefix()
    group = f"{prefix}-broker"
    ensure = [*source_topics(prefix, COUNCILS)]
    from broker.app import ensure_topics

    ensure_topics(bootstrap, ensure, partitions=partitions, replication=1,
                  security=bench_security())  # fmt: skip
    worker = broker_worker(data, "broker-latency", bootstrap=bootstrap, prefix=prefix,
                           group=group, work=work, partitions=partitions,
                           threshold=threshold)  # fmt: skip
    directory = data.federation.load()
    subscriber = _Subscriber(bootstrap, notify_topics(prefix, directory))
    # Linger 5 ms, as a connector sends: a request per few events, not one each
    # (kafka-python's sender is the bench's largest CPU cost). The wait counts
    # in the figures: ``published_at`` is stamped before the send.
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                             enable_idempotence=True, **client_config())  # fmt: skip
    keys, codec = data.signing_keys(), Codec()
    count = min(int(rate * seconds), len(data.events))
    items = data.events[:count]
    published: dict[str, datetime] = {}
    try:
        worker.start()
        # Warm up: the first event is processed before the clock starts.
        first = items[0]
        event, value = resigned(first, keys[first.event.source_council], codec,
                                datetime.now(UTC))  # fmt: skip
        published[event.event_id] = event.published_at
        producer.send(f"{prefix}.{first.topic_suffix}", key=first.key, value=value).get(30)

        def matched() -> tuple[float, list[float]]:
            counts = metric_counts(worker.metrics_port)
            return (counts["match"] if counts else 0.0), [1.0]

        watch(matched, first.routed, [worker], timeout=300)
        subscriber.start()
        if not subscriber.ready.wait(60):
            raise RuntimeError("the subscriber was never assigned the match topics")
        cpu_before, load_before = worker.usage().cpu_seconds, _own_cpu_s()
        kafka = kafka_pid(bootstrap)
        kafka_before = ProcessUsage.of(kafka).cpu_seconds if kafka is not None else None
        start = time.perf_counter()
        for i, item in enumerate(items[1:], start=1):
            delay = start + (i - 1) / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            event, value = resigned(item, keys[item.event.source_council], codec,
                                    datetime.now(UTC))  # fmt: skip
            published[event.event_id] = event.published_at
            producer.send(f"{prefix}.{item.topic_suffix}", key=item.key, value=value)
        producer.flush(timeout=60)
        achieved = (count - 1) / (time.perf_counter() - start)
        watch(matched, sum(i.routed for i in items), [worker], timeout=600)
        offered = max(count - 1, 1)
        cpu_us = (worker.usage().cpu_seconds - cpu_before) / offered * 1e6
        load_us = (_own_cpu_s() - load_before) / offered * 1e6
        kafka_us = float("nan")
        if kafka is not None and kafka_before is not None:
            kafka_us = (ProcessUsage.of(kafka).cpu_seconds - kafka_before) / offered * 1e6
        # Every notification the worker sent reaches the subscriber (one message each).
        sent = (metric_counts(worker.metrics_port) or {}).get("notifications", 0.0)
        deadline = time.monotonic() + 60
        while len(subscriber.seen) < sent and time.monotonic() < deadline:
            time.sleep(0.1)  # polling interval of a condition
    finally:
        producer.close()
        subscriber.stopping.set()
        if subscriber.is_alive():
            subscriber.join(timeout=10)
        worker.stop()
    created, seen = [], []
    noted: set[str] = set()
    for arrived, raw in subscriber.seen:
        notification = open_notification(raw, directory, codec)
        if notification.notification_id in noted:
            continue
        noted.add(notification.notification_id)
        times = [published[e.event_id] for e in notification.events if e.event_id in published]
        trigger = max(times)
        created.append((notification.created_at - trigger).total_seconds() * 1000)
        seen.append((arrived - trigger.timestamp()) * 1000)
    return Latency(rate, achieved, count, len(noted), tuple(created), tuple(seen), cpu_us,
                   load_us, kafka_us)  # fmt: skip


def _own_cpu_s() -> float:
    """This process's CPU seconds, every thread's: the publisher, the subscriber and the
    polling of the worker's metrics."""
    return ProcessUsage.of(os.getpid()).cpu_seconds
