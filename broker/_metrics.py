"""The broker's Prometheus metrics; labels are council codes, event types, agreement
ids, outcomes and reason codes, never tokens or references."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from broker._checkpoint_age import CheckpointAge
from broker._errors import BrokerError

__all__ = ["BrokerMetrics"]


def _registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


@dataclass
class BrokerMetrics:
    """One registry per broker process."""

    registry: CollectorRegistry = field(default_factory=_registry)

    def __post_init__(self) -> None:
        r = self.registry
        self.events = Counter(
            "fedbroker_broker_events", "Accepted events by source and type",
            ["source", "event_type"], registry=r,
        )  # fmt: skip
        self.rejected = Counter(
            "fedbroker_broker_rejected", "Refused messages by reason", ["reason"], registry=r
        )
        self.decisions = Counter(
            "fedbroker_broker_decisions", "Decisions by agreement and outcome",
            ["agreement", "outcome"], registry=r,
        )  # fmt: skip
        self.notifications = Counter(
            "fedbroker_broker_notifications", "Notifications published", ["agreement"], registry=r
        )
        self.matches = Counter(
            "fedbroker_broker_matches", "Matched pairs found, by method", ["method"], registry=r
        )
        self.sightings = Gauge(
            "fedbroker_broker_sightings_held",
            "Sightings this worker has added to token state, less those removed, since it"
            " started (one per token an event is kept under; a rebalance moves state, not this)",
            registry=r,
        )
        self.routed = Counter(
            "fedbroker_broker_routed",
            "Routed batches: messages sent by verify, items and (item, token) steps done by match",
            ["what"], registry=r,
        )  # fmt: skip
        self.state_writes = Counter(
            "fedbroker_broker_state_writes",
            "Token states written (one changelog record each), at most once per token per batch",
            registry=r,
        )
        self.sighting_rows = Counter(
            "fedbroker_broker_sighting_rows_written",
            "Sightings stored (one changelog record each), once per event per partition",
            registry=r,
        )
        self.swept = Counter(
            "fedbroker_broker_swept",
            "Removed by the retention sweep from tokens no event touched since they expired:"
            " sightings (one per token), seen ids, and token states left empty (deleted whole)",
            ["what"], registry=r,
        )  # fmt: skip
        self.notified_latency = Histogram(
            "fedbroker_broker_published_to_notified_seconds",
            "From the connector's publish time to the notification",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.processing = Histogram(
            "fedbroker_broker_processing_seconds",
            "Time spent on one message by each stage (verify, match)",
            ["stage"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=r,
        )
        self.lag = Gauge(
            "fedbroker_broker_consumer_lag",
            "Messages behind the partition's high-water mark, as last seen by this worker",
            ["topic", "partition"],
            registry=r,
        )
        self.threshold = Gauge(
            "fedbroker_broker_dice_threshold", "The Dice threshold in use", registry=r
        )
        self.failures = Counter(
            "fedbroker_broker_failures",
            "Unexpected per-message failures and Kafka retries, by stage and error class",
            ["stage", "error"], registry=r,
        )  # fmt: skip
        self.side_errors = Counter(
            "fedbroker_broker_side_errors",
            "Errors in timers and side paths (retried with backoff), by task and error class",
            ["task", "error"], registry=r,
        )  # fmt: skip
        self.directory_expires_in = Gauge(
            "fedbroker_broker_directory_expires_in_seconds",
            "Seconds until the directory in use expires (negative: expired, not deciding)",
            registry=r,
        )
        self.directory_serial = Gauge(
            "fedbroker_broker_directory_serial", "Serial of the directory in use", registry=r
        )
        self.directory_reloads = Counter(
            "fedbroker_broker_directory_reloads",
            "Directory file changes by outcome (applied, restart-needed, or the refusal reason)",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.deciding = Gauge(
            "fedbroker_broker_deciding",
            "1 while the worker decides; 0 while it refuses to (an expired directory)",
            registry=r,
        )
        self.ready = Gauge(
            "fedbroker_broker_ready",
            "1 while the worker holds partitions, its tables recovered, no rebalance under way",
            registry=r,
        )
        self.oldest_pending_send = Gauge(
            "fedbroker_broker_oldest_pending_send_seconds",
            "Seconds the oldest send not yet acknowledged by Kafka has waited (0: none waits)",
            registry=r,
        )
        self.gc_pauses = Histogram(
            "fedbroker_broker_gc_pause_seconds",
            "Garbage collections by generation and how long each held the interpreter",
            ["generation"],
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.gc_frozen = Gauge(
            "fedbroker_broker_gc_frozen_objects",
            "Objects full collections skip (survivors of one, counted at most every 30 s)",
            registry=r,
        )
        self.checkpoint_age = CheckpointAge()  # the app points it at its chains
        r.register(self.checkpoint_age)

    def serve(self, port: int, address: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` over HTTP (port 0 disables).

        Raises:
            BrokerError: ``metrics-port-unavailable``, the port cannot be bound
                (in use, or not this host's address): one line, not a traceback.
        """
        if not port:
            return
        try:
            start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            raise BrokerError(
                f"metrics cannot be served on {address}:{port} ({exc.strerror or exc})",
                reason="metrics-port-unavailable",
            ) from exc
