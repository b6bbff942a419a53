"""No single message stops the broker: refusals quarantined, bugs retried a bounded number of times.

Each message a stage handles runs inside ``guarded``. A refusal (``Rejected``) or
any other typed fedbroker error is the message's fault: it goes to
``<prefix>.rejected`` with its reason code at once. An unexpected exception is
a bug, but a bug must not wedge a partition for ever: the message is retried
with backoff (a fault elsewhere may pass), its attempt count is written to a
compacted topic so that it survives a restart, and after ``max_attempts`` it is
quarantined as ``internal-error`` and the stream goes on. A Kafka outage is
nobody's message's fault: it is retried with backoff for as long as it lasts,
never counted as one of the message's attempts, and never quarantines a good
message. That holds for the client's own errors too: the stage's sends (and the
guard's own writes of a rejection or an attempt count) run inside the edge's
``kafka_errors``, so a raw aiokafka or kafka-python error is a
``KafkaUnavailable`` here, not a bug of the message's.

Side paths (the timers) use ``Backoff`` in the same spirit: an error is
counted and logged, and the next try waits a little longer, never killing the
worker. Logs name the exception class and the message's coordinates only: an
exception's text can quote the data that caused it.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from broker._errors import KafkaUnavailable
from broker._kafka_edge import kafka_errors
from schemas import FedbrokerError

__all__ = [
    "DEFAULT_BACKOFF_CAP_S",
    "DEFAULT_BACKOFF_S",
    "DEFAULT_MAX_ATTEMPTS",
    "INTERNAL_ERROR",
    "AttemptCounts",
    "Backoff",
    "guarded",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BACKOFF_S = 0.5
DEFAULT_BACKOFF_CAP_S = 30.0
#: The reason code of a message quarantined after every attempt failed unexpectedly.
INTERNAL_ERROR = "internal-error"

Persist = Callable[[str, int | None], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


@dataclass
class Backoff:
    """Exponential backoff for a repeated task, on a caller-supplied monotonic clock."""

    base_s: float = DEFAULT_BACKOFF_S
    cap_s: float = DEFAULT_BACKOFF_CAP_S
    failures: int = 0
    not_before: float = 0.0

    def delay(self) -> float:
        """The wait after the latest failure (0 before any)."""
        if self.failures == 0:
            return 0.0
        return float(min(self.cap_s, self.base_s * 2 ** min(self.failures - 1, 30)))

    def ready(self, now: float) -> bool:
        return now >= self.not_before

    def failed(self, now: float) -> float:
        self.failures += 1
        self.not_before = now + self.delay()
        return self.delay()

    def succeeded(self) -> None:
        self.failures, self.not_before = 0, 0.0


@dataclass
class AttemptCounts:
    """Failed attempts per message (``topic/partition/offset``), persisted on change.

    ``held`` is what the attempt log held at start (a compacted topic read back
    by the app); ``persist`` writes a count, or None to forget one.
    """

    persist: Persist
    held: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, persist: Persist, held: Mapping[str, int]) -> AttemptCounts:
        return cls(persist, dict(held))

    def get(self, coords: str) -> int:
        return self.held.get(coords, 0)

    def note_failure(self, coords: str) -> int:
        """One more failed attempt, in memory; ``save`` writes it (retried apart from
        the count, so a write Kafka refused is not counted twice)."""
        count = self.held[coords] = self.get(coords) + 1
        return count

    async def save(self, coords: str) -> None:
        await self.persist(coords, self.held.get(coords))

    async def failed(self, coords: str) -> int:
        count = self.note_failure(coords)
        await self.save(coords)
        return count

    async def clear(self, coords: str) -> None:
        if self.held.get(coords) is not None:
            await self.persist(coords, None)
            del self.held[coords]


async def guarded(
    coords: str,
    stage: str,
    work: Callable[[], Awaitable[None]],
    *,
    attempts: AttemptCounts,
    reject: Callable[[str], Awaitable[None]],
    count_failure: Callable[[str, str], None],
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff: Backoff | None = None,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Run ``work`` for one message until it succeeds, is refused, or is quarantined.

    Args:
        coords: ``topic/partition/offset`` of the message (its attempt key).
        stage: ``verify`` or ``match``, for logs and the failure metric.
        work: the stage's handling of the message.
        attempts: the persisted attempt counts.
        reject: sends the message's coordinates and a reason code to ``rejected``.
        count_failure: increments the failure metric (stage, exception class).
        max_attempts: unexpected failures before quarantine (default 3, counting
            attempts made before a restart).
        backoff: the wait between attempts (default ``Backoff()``).
        sleep: how to wait (tests pass a recorder).
    """
    backoff = backoff or Backoff()

    async def through_kafka(call: Callable[[], Awaitable[None]], operation: str) -> None:
        """``call`` until Kafka takes it: an outage waits, it is nobody's attempt."""
        while True:
            try:
                with kafka_errors(operation):
                    await call()
                return
            except KafkaUnavailable as exc:
                count_failure(stage, exc.reason)
                delay = backoff.failed(0.0)
                logger.warning(
                    "%s: Kafka unavailable (%s) at %s; retrying in %.1f s",
                    stage, operation, coords, delay,
                )  # fmt: skip
                await sleep(delay)

    async def quarantine(reason: str) -> None:
        await through_kafka(lambda: reject(reason), "rejecting")
        await forget()

    async def forget() -> None:
        if attempts.get(coords):
            await through_kafka(lambda: attempts.clear(coords), "clearing the attempt count")

    while True:
        try:
            with kafka_errors(stage):
                await work()
        except KafkaUnavailable as exc:
            count_failure(stage, exc.reason)
            delay = backoff.failed(0.0)
            logger.warning("%s: Kafka unavailable at %s; retrying in %.1f s", stage, coords, delay)
            await sleep(delay)
            continue
        except FedbrokerError as exc:
            await quarantine(exc.reason)
            return
        except Exception as exc:  # noqa: BLE001 - a bug must not wedge the partition
            count = attempts.note_failure(coords)
            await through_kafka(lambda: attempts.save(coords), "counting the attempt")
            count_failure(stage, type(exc).__name__)
            frames = "".join(traceback.format_tb(exc.__traceback__))
            logger.error(
                "%s: unexpected %s at %s (attempt %d of %d)\n%s",
                stage, type(exc).__name__, coords, count, max_attempts, frames,
            )  # fmt: skip
            if count >= max_attempts:
                await quarantine(INTERNAL_ERROR)
                return
            await sleep(backoff.failed(0.0))
            continue
        await forget()
        return
