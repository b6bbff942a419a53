"""The connector's Prometheus metrics: counts and timings, labelled by source and reason only.

Labels are the source name, the topic and reason codes, all chosen by the
operator or the code; no label ever carries a value from a record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from connectors._errors import ConnectorError

__all__ = ["ConnectorMetrics"]


def _registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


@dataclass
class ConnectorMetrics:
    """One registry per connector, so tests and several connectors never share counters."""

    registry: CollectorRegistry = field(default_factory=_registry)

    def __post_init__(self) -> None:
        r = self.registry
        self.rows_read = Counter(
            "fedbroker_connector_rows_read", "Source rows read", ["source"], registry=r
        )
        self.rows_quarantined = Counter(
            "fedbroker_connector_rows_quarantined",
            "Rows refused and quarantined, by field and reason code",
            ["source", "field", "reason"],
            registry=r,
        )
        self.fields_dropped = Counter(
            "fedbroker_connector_fields_dropped",
            "Identifiers left out of kept or refused rows as malformed, by field and reason code",
            ["source", "field", "reason"],
            registry=r,
        )
        self.events_enqueued = Counter(
            "fedbroker_connector_events_enqueued",
            "Records committed to the outbox",
            ["source"],
            registry=r,
        )
        self.events_repeated = Counter(
            "fedbroker_connector_events_repeated",
            "Records whose event id was already in the outbox (same reference, type "
            "and time as an earlier row): kept once",
            ["source"],
            registry=r,
        )
        self.events_published = Counter(
            "fedbroker_connector_events_published",
            "Records acknowledged by Kafka",
            ["topic"],
            registry=r,
        )
        self.outbox_depth = Gauge(
            "fedbroker_connector_outbox_depth", "Records waiting for Kafka", registry=r
        )
        self.publish_latency = Histogram(
            "fedbroker_connector_publish_latency_seconds",
            "From outbox commit to Kafka acknowledgement",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.kafka_unavailable = Counter(
            "fedbroker_connector_kafka_unavailable",
            "Publish attempts that found Kafka unavailable",
            registry=r,
        )
        self.source_unavailable = Counter(
            "fedbroker_connector_source_unavailable",
            "Reading passes in which a source could not be read (its database down, its "
            "folder gone), by source; the other sources are read, and it is tried again",
            ["source"],
            registry=r,
        )
        self.build_worker_failures = Counter(
            "fedbroker_connector_build_worker_failures",
            "Build worker pools lost mid-step, by reason (worker-died, worker-stuck); "
            "their steps are built again",
            ["reason"],
            registry=r,
        )
        self.directory_refused = Counter(
            "fedbroker_connector_directory_refused",
            "New directory versions refused (rolled back, unsigned, expired), by reason code",
            ["reason"],
            registry=r,
        )
        self.directory_restart_needed = Counter(
            "fedbroker_connector_directory_restart_needed",
            "Directory changes taken up that add what only a restart loads",
            registry=r,
        )
        self.directory_expires_in = Gauge(
            "fedbroker_connector_directory_expires_in_seconds",
            "Seconds before the directory in force expires",
            registry=r,
        )

    def serve(self, port: int, address: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` over HTTP (port 0 disables).

        Raises:
            ConnectorError: ``metrics-port-unavailable``, the port cannot be
                bound (in use, or not this host's address).
        """
        if not port:
            return
        try:
            start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            raise ConnectorError(
                f"metrics cannot be served on {address}:{port} ({exc.strerror or exc})",
                reason="metrics-port-unavailable",
            ) from exc
