"""What a broker worker is configured with, and the client settings it runs Kafka with.

``BrokerSettings`` is built by the CLI from flags. ``FAUST_TUNING`` is the one set
of Faust/aiokafka client settings the worker uses, and the bench's bare
pass-through baseline uses the same, so their ratio compares work, not tuning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from broker._admission import AdmissionPolicy, Limits
from broker._sweep import DEFAULT_SWEEP_KEYS
from broker._verify import DEFAULT_MAX_SKEW, DEFAULT_OCCURRED_FLOOR, DEFAULT_RECORDED_FLOOR
from broker._worker import QuietWorker
from consent import KafkaSecurity

__all__ = [
    "DEFAULT_METRICS_BIND",
    "DEFAULT_PARTITIONS",
    "FAUST_TUNING",
    "PRODUCER_BUFFER_MESSAGES",
    "SESSION_TIMEOUT_S",
    "BrokerSettings",
]

DEFAULT_PARTITIONS = 3
DEFAULT_TOPIC_PREFIX = "fed"
DEFAULT_DIRECTORY_POLL_S = 5.0
#: Loopback unless asked: a container sets 0.0.0.0 so its Prometheus can scrape it.
DEFAULT_METRICS_BIND = "127.0.0.1"
#: Pending producer sends before Faust pauses the streams to flush (its default: 100).
PRODUCER_BUFFER_MESSAGES = 2000
#: A killed worker's partitions move to the survivors after this, not a minute
#: (Faust's default); heartbeats every fifth of it.
SESSION_TIMEOUT_S = 10.0

#: Throughput settings (issue 15 item 2). Faust's defaults send each message
#: as soon as it is produced (linger 0) in batches of 16 KiB, fetch 1 MiB per
#: partition, buffer 4,096 messages per stream and keep one standby replica.
#: - linger 5 ms and 1 MiB batches: the routed, changelog and audit sends of
#:   one batch leave in a few requests, not one each; 5 ms is small next to
#:   the 250 ms latency budget.
#: - 4 MiB fetches and a 16,384-message stream buffer: ``take_events`` fills
#:   its batches from what was fetched, rather than waiting on round trips.
#: - no standby replicas: a standby replays every other worker's changelogs
#:   all the time (two workers paid twice the CPU per event); a moved partition
#:   is instead restored from its changelog, which the batched writes keep
#:   short (one record per changed token per batch); the bench reports the
#:   recovery time this costs.
#: - ``QuietWorker``: Faust's worker set the root logger to DEBUG for its
#:   terminal spinner, and every Kafka message paid for a dropped debug record.
#: - a producer request timeout of 30 s, Kafka's own default, not Faust's 20
#:   minutes: Faust sets it high so that batches do not expire, but with
#:   idempotence aiokafka never expires a batch, and an unanswered produce
#:   request would hold a send, and the worker's stop, for those 20 minutes
#:   with nothing logged (a CI run saw a send pending 17 minutes so; the
#:   cause is not shown). Now such a request times out, is logged and is
#:   retried (idempotence: the retry cannot land twice), and a send waiting
#:   30 s for room is retried by the agents like any other Kafka outage.
FAUST_TUNING: MappingProxyType[str, Any] = MappingProxyType(
    {
        "producer_linger": 0.005,
        "producer_max_batch_size": 1024 * 1024,
        "producer_max_request_size": 4 * 1024 * 1024,
        "consumer_max_fetch_size": 4 * 1024 * 1024,
        "stream_buffer_maxsize": 16_384,
        "table_standby_replicas": 0,
        "producer_request_timeout": 30.0,
        "Worker": QuietWorker,
    }
)


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Everything ``fedbroker broker run`` needs; the CLI builds it from flags.

    ``recorded_floor`` is the federation's start: no consent is older.
    ``sweep_keys`` is how many table keys each partition's retention sweep
    examines per checkpoint tick (``broker/_sweep.py``).
    """

    bootstrap: str
    directory: Path
    trust_anchor: Path
    signing_key: Path
    app_id: str = "fedbroker-broker"
    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    partitions: int = DEFAULT_PARTITIONS
    replication: int | None = None  # None: the cluster's broker count, at most 3
    threshold: float | None = None
    metrics_port: int = 0
    metrics_bind: str = DEFAULT_METRICS_BIND
    data_dir: Path = Path(".fedbroker/broker")
    store: str = "rocksdb://"
    accepted_epochs: frozenset[int] | None = None
    refit_interval_s: float = 30.0
    checkpoint_interval_s: float = 60.0
    sweep_keys: int = DEFAULT_SWEEP_KEYS
    directory_poll_s: float = DEFAULT_DIRECTORY_POLL_S
    max_skew: timedelta = DEFAULT_MAX_SKEW
    occurred_floor: datetime = DEFAULT_OCCURRED_FLOOR
    recorded_floor: datetime = DEFAULT_RECORDED_FLOOR
    limits: Limits = field(default_factory=Limits)
    max_attempts: int = 3
    security: KafkaSecurity = KafkaSecurity()

    def policy(self) -> AdmissionPolicy:
        return AdmissionPolicy(
            limits=self.limits,
            max_skew=self.max_skew,
            occurred_floor=self.occurred_floor,
            recorded_floor=self.recorded_floor,
            accepted_epochs=self.accepted_epochs,
        )
