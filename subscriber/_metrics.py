"""The subscriber's Prometheus metrics; labels are outcomes and reason codes only.

Kept in a registry of the subscriber's own, so a service that embeds it can
serve these beside its own metrics (``prometheus_client`` registries compose)
and two subscribers in one process do not clash.
"""

from __future__ import annotations

from collections import Counter as Tally
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from subscriber._errors import SubscriberError

__all__ = ["SubscriberMetrics"]


def _registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


@dataclass
class SubscriberMetrics:
    """Counters for one subscriber; ``tally`` holds the same counts for in-process reading.

    Outcomes: ``delivered``, ``duplicate``, ``skipped`` (another agreement),
    ``dead-lettered``, ``lost`` (messages Kafka deleted before they were read);
    ``retried`` counts hand-overs tried again.
    """

    registry: CollectorRegistry = field(default_factory=_registry)
    tally: Tally[str] = field(default_factory=Tally)

    def __post_init__(self) -> None:
        self.notifications = Counter(
            "fedbroker_subscriber_notifications",
            "Notifications read, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "fedbroker_subscriber_dead_letters",
            "Notifications refused and dead-lettered, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.directory_expires_in = Gauge(
            "fedbroker_subscriber_directory_expires_in_seconds",
            "Seconds the directory in force has left; below zero nothing is handed over",
            registry=self.registry,
        )
        self.retries = Counter(
            "fedbroker_subscriber_handover_retries",
            "Hand-overs that failed and will be tried again, by reason",
            ["reason"],
            registry=self.registry,
        )

    def serve(self, port: int, address: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` over HTTP (port 0 disables).

        Raises:
            SubscriberError: ``metrics-port-unavailable``, the port cannot be
                bound (in use, or not this host's address).
        """
        if not port:
            return
        try:
            start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            raise SubscriberError(
                f"metrics cannot be served on {address}:{port} ({exc.strerror or exc})",
                reason="metrics-port-unavailable",
            ) from exc

    def count(self, outcome: str, reason: str | None = None, *, amount: int = 1) -> None:
        """Count ``amount`` outcomes (and the reason for ``dead-lettered`` and ``retried``)."""
        self.tally[outcome] += amount
        if outcome == "retried":
            self.retries.labels(reason or "unknown").inc(amount)
            return
        self.notifications.labels(outcome).inc(amount)
        if outcome == "dead-lettered":
            self.tally[f"dead-lettered:{reason}"] += amount
            self.dead_letters.labels(reason or "unknown").inc(amount)
