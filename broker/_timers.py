"""The worker's clock and its periodic side work: checkpoint ticks, threshold refit,
directory reloads, the watch on unacknowledged sends, readiness.

One ``Clock`` is injected into the app and read everywhere a time is needed
(decisions, admission, backoff), so a test can drive time and every part of a
worker agrees on it. A timer's work runs inside ``side``: an error (a Kafka
node down, say) is counted and logged by class, and the next tick retries after
a backoff; a side path never kills the worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from broker._errors import DirectoryNotUsable
from broker._histograms import read_histograms
from broker._matching import Matcher
from broker._metrics import BrokerMetrics
from broker._poison import Backoff
from broker._routed import TICK_KEY, ItemKind, RoutedItem, encode_batches
from broker._threshold import choose_threshold, fit_threshold

if TYPE_CHECKING:
    from broker._parts import Parts

__all__ = ["READY_POLL_S", "Clock", "install_timers", "ready", "side"]

logger = logging.getLogger(__name__)

#: How often ``fedbroker_broker_ready`` is brought up to date.
READY_POLL_S = 0.5
#: How often the oldest unacknowledged send is measured (``broker._pending_sends``).
PENDING_POLL_S = 10.0


def _wall() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Clock:
    """Wall time (aware, UTC) for decisions and a monotonic one for waits."""

    wall: Callable[[], datetime] = field(default=_wall)
    monotonic: Callable[[], float] = field(default=time.monotonic)

    def now(self) -> datetime:
        return self.wall()


async def side(
    task: str,
    backoff: Backoff,
    metrics: BrokerMetrics,
    work: Callable[[], Awaitable[None]],
    clock: Clock = Clock(),  # noqa: B008 - frozen, never mutated
) -> None:
    """Run a timer's work; on any error count it, log its class and back off.

    A side path (a threshold refit, a checkpoint tick, a directory reload) that
    fails must not kill the worker: the next tick retries once the backoff has
    passed (``KafkaConnectionError`` with a node down killed a worker before).
    """
    if not backoff.ready(clock.monotonic()):
        return
    try:
        await work()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - a side path never kills the worker
        metrics.side_errors.labels(task, type(exc).__name__).inc()
        delay = backoff.failed(clock.monotonic())
        logger.warning("%s failed (%s); retrying in %.0f s", task, type(exc).__name__, delay)
    else:
        backoff.succeeded()


def install_timers(parts: Parts) -> None:
    """Define the checkpoint tick, the threshold refit, the directory check and the send watch."""
    p, settings, metrics, clock = parts, parts.settings, parts.metrics, parts.clock
    tick_body = encode_batches([RoutedItem(ItemKind.TICK)])[0]
    tick_backoff = Backoff(base_s=settings.checkpoint_interval_s / 3)

    async def send_ticks() -> None:
        for partition in range(settings.partitions):
            await p.topics.routed.send(key=TICK_KEY, value=tick_body, partition=partition)

    @p.app.timer(interval=settings.checkpoint_interval_s / 3)  # type: ignore[untyped-decorator]
    async def tick() -> None:
        """Let every partition's chain sign a checkpoint even when no decision arrives.

        Checkpoints are otherwise written only as decisions are appended, so the
        last records before a quiet spell (or a shutdown) would wait unsigned.
        """
        await side("tick", tick_backoff, metrics, send_ticks, clock)

    refit_backoff = Backoff(base_s=settings.refit_interval_s, cap_s=10 * settings.refit_interval_s)

    async def refit_once() -> None:
        merged = await asyncio.get_running_loop().run_in_executor(
            None,
            read_histograms,
            settings.bootstrap,
            p.histograms.changelog_topic.get_topic_name(),
            settings.security,
        )
        fit = choose_threshold(None, fit_threshold(merged))
        if fit.source == "fitted" and fit.threshold != p.core.matcher.threshold:
            logger.warning("Dice threshold now %s", fit.describe())
            p.core.matcher = Matcher(fit.threshold)
            metrics.threshold.set(fit.threshold)

    @p.app.timer(interval=settings.refit_interval_s)  # type: ignore[untyped-decorator]
    async def refit() -> None:
        """Refit the Dice threshold from every partition's scores.

        Reads the histograms' changelog, not the table: iterating a RocksDB
        table from a timer stalled a partition's processing in tests.
        """
        if settings.threshold is None:
            await side("refit", refit_backoff, metrics, refit_once, clock)

    directory_backoff = Backoff(base_s=settings.directory_poll_s)

    async def reload_directory() -> None:
        now = clock.now()
        try:
            reloaded = p.watch.poll(now)
        except DirectoryNotUsable as exc:
            metrics.directory_reloads.labels(exc.reason).inc()
            logger.error("directory change refused (%s); serial %d stays in use",
                         exc.reason, p.watch.current.serial)  # fmt: skip
            reloaded = None
        if reloaded is not None:
            p.core.directory = p.watch.current
            metrics.directory_serial.set(reloaded.serial)
            outcome = "restart-needed" if reloaded.restart_needed else "applied"
            metrics.directory_reloads.labels(outcome).inc()
            p.renewed.set()
        metrics.directory_expires_in.set(p.watch.expires_in(now))
        metrics.deciding.set(1 if p.watch.usable(now) else 0)

    @p.app.timer(interval=settings.directory_poll_s)  # type: ignore[untyped-decorator]
    async def directory_check() -> None:
        """Apply a changed directory at once, refuse a rollback, and report its expiry."""
        await side("directory", directory_backoff, metrics, reload_directory, clock)

    @p.app.timer(interval=PENDING_POLL_S)  # type: ignore[untyped-decorator]
    async def pending_sends() -> None:
        """Report the oldest unacknowledged send, and log each one that seems stuck."""
        metrics.oldest_pending_send.set(p.pending_sends.oldest_s())
        for topic, waited in p.pending_sends.newly_stuck():
            logger.error("a send to %s is unacknowledged after %.0f s (%d sends pending)",
                         topic, waited, len(p.pending_sends))  # fmt: skip

    @p.app.timer(interval=READY_POLL_S)  # type: ignore[untyped-decorator]
    async def readiness() -> None:
        """``fedbroker_broker_ready``: timers start once the worker joined and first recovered."""
        metrics.ready.set(1 if ready(p.app) else 0)


def ready(app: Any) -> bool:
    """The worker holds partitions, its tables are recovered, and no rebalance is under way.

    Only then does it read its inputs: a worker started but not yet assigned,
    or between a revocation and the end of the next recovery, does not.
    """
    assigned = bool(app.consumer.assignment())
    return assigned and bool(app.tables.actives_ready) and not app.rebalancing
