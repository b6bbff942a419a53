"""One message, from bytes to hand-over, with every outcome decided and recorded.

No Kafka here: the consumer loop gives a message's place and bytes, and gets
back whether to move past it or to read it again later. The steps, in the
order that keeps the promises of docs/subscriber.md:

1. verify the broker's signature, then open and check (``_open``); a refusal is
   dead-lettered under its reason code and the partition moves on;
2. an id already handed over is passed by (a duplicate); one made before the
   oldest id the store remembers is refused (``expired``);
3. the id is marked ``pending``, the sink takes it, and the id and the offset
   past it are committed together (``_store``);
4. a failed hand-over keeps the offset (``Retry``); an unexpected error is
   retried a bounded number of times, counted in the store so a message that
   crashes the process cannot wedge the partition across restarts.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from consent import Directory
from schemas import Codec, FedbrokerError, MatchNotification
from subscriber._deadletter import DeadLetter, DeadLetterFile
from subscriber._errors import (
    DeliveryStoreError,
    HandoverFailed,
    HandoverRefused,
    NotificationExpired,
)
from subscriber._metrics import SubscriberMetrics
from subscriber._open import open_notification, read_notification
from subscriber._settings import SubscriberSettings
from subscriber._sinks import Sink
from subscriber._store import DeliveryStore

__all__ = ["Delivery", "Outcome", "Place", "Retry"]

log = logging.getLogger(__name__)

_CLOCK_SKEW = 24 * 3600.0
"""How far the broker's clock may be from this one, in seconds; beyond it a
notification's date cannot be trusted to bound its id's retention."""

Outcome = Literal["delivered", "duplicate", "skipped", "dead-lettered"]


@dataclass(frozen=True, slots=True)
class Place:
    """Where a message sits in Kafka."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Retry:
    """Read this message again later; ``reason`` is the metric label."""

    reason: str


class Delivery:
    """Handles one message at a time for one service (not thread-safe: one consumer)."""

    def __init__(
        self,
        settings: SubscriberSettings,
        *,
        directory: Directory,
        key: X25519PrivateKey,
        sink: Sink,
        store: DeliveryStore,
        dead_letters: DeadLetterFile,
        metrics: SubscriberMetrics,
        codec: Codec | None = None,
    ) -> None:
        self.settings = settings
        self._directory = directory
        self._key = key
        self._sink = sink
        self._store = store
        self._dead = dead_letters
        self._metrics = metrics
        self._codec = codec or Codec()

    @property
    def directory(self) -> Directory:
        return self._directory

    def use_directory(self, directory: Directory) -> None:
        """Verify and open with this directory from the next message on (a reload)."""
        self._directory = directory

    def handle(
        self, place: Place, value: bytes | None, *, first: bool = False, in_doubt: bool = False
    ) -> Outcome | Retry:
        """Decide and carry out what happens to one message; never raises for its content.

        ``first`` marks the first message of a partition since this process
        started: a process that died on it (a crash no ``except`` sees) counts as
        an attempt, so a message that kills the process every time is set aside
        after ``max_unexpected_attempts`` deaths (reason ``crashed-repeatedly``).

        ``in_doubt`` says the message may have been handed over though the store has
        no record of it (the store was lost); the sink is asked, as for ``pending``.

        Raises:
            DeliveryStoreError: the store or dead-letter file cannot be written;
                nothing can be promised then, so the subscriber stops.
        """
        if first:
            deaths = self._store.add_attempt(place.topic, place.partition, place.offset)
            if deaths > self.settings.max_unexpected_attempts:
                return self._dead_letter(place, "crashed-repeatedly", None)
        outcome = self._handle(place, value, in_doubt)
        if first and isinstance(outcome, Retry):
            # It returned: the process did not die on this message. Left counted, a
            # few restarts during a hand-over outage would set it aside unsent.
            self._store.withdraw_attempt(place.topic, place.partition, place.offset)
        return outcome

    def _handle(self, place: Place, value: bytes | None, maybe_handed: bool) -> Outcome | Retry:
        notification: MatchNotification | None = None
        try:
            notification = read_notification(
                value or b"", directory=self._directory, codec=self._codec
            )
            return self._deliver(place, notification, maybe_handed)
        except DeliveryStoreError:
            raise
        except HandoverRefused as exc:
            return self._dead_letter(place, exc.reason, notification)
        except HandoverFailed as exc:
            self._metrics.count("retried", exc.reason)
            return Retry(exc.reason)
        except FedbrokerError as exc:
            return self._dead_letter(place, exc.reason, notification)
        except Exception as exc:  # a bug, in our code or the sink's: bounded, then set aside
            attempts = self._store.add_attempt(place.topic, place.partition, place.offset)
            # The type and where it was raised, not its message: a bug's message may
            # quote the values it choked on.
            where = traceback.extract_tb(exc.__traceback__)[-1]
            log.error(
                "unexpected %s in %s:%d at %s[%d]@%d (attempt %d)",
                type(exc).__name__, where.filename, where.lineno,
                place.topic, place.partition, place.offset, attempts,
            )  # fmt: skip
            if attempts < self.settings.max_unexpected_attempts:
                self._metrics.count("retried", "unexpected-error")
                return Retry("unexpected-error")
            return self._dead_letter(
                place, "unexpected-error", notification, error_type=type(exc).__name__
            )

    def _deliver(
        self, place: Place, notification: MatchNotification, maybe_handed: bool
    ) -> Outcome:
        wanted = self.settings.agreement
        nid = notification.notification_id
        if wanted is not None and notification.agreement_id != wanted:
            self._advance(place)
            return self._counted("skipped")
        state = self._store.state(nid)
        if state == "delivered":
            self._advance(place)
            return self._counted("duplicate")
        self._check_age(notification)
        opened = open_notification(
            notification, service=self.settings.service, key=self._key, directory=self._directory
        )
        in_doubt = False
        if state == "pending" or (state is None and maybe_handed):
            confirmed = self._sink.confirm(nid)
            if confirmed:
                log.info("%s was handed over before a crash; recorded now", nid)
                self._advance(place, delivered=nid)
                return self._counted("duplicate")
            in_doubt = confirmed is None
        self._store.mark_pending(nid)
        self._sink.deliver(opened, in_doubt=in_doubt)
        self._advance(place, delivered=nid)
        return self._counted("delivered")

    def _check_age(self, notification: MatchNotification) -> None:
        """Refuse what the store may have forgotten: an id is forgotten
        ``retention_seconds`` after its hand-over, so a notification made longer ago
        than that (less the clock skew allowed between broker and service) may have
        been handed over already; one dated ahead by more than the skew would
        outlive its id the same way."""
        age = time.time() - notification.created_at.timestamp()
        nid = notification.notification_id
        retention = self._store.retention_seconds
        # A retention shorter than two days keeps half of itself, not nothing.
        if age > retention - min(_CLOCK_SKEW, retention / 2):
            raise NotificationExpired(f"notification {nid} is older than ids are remembered")
        if -age > _CLOCK_SKEW:
            raise NotificationExpired(f"notification {nid} is dated ahead", reason="future-dated")

    def _advance(self, place: Place, *, delivered: str | None = None) -> None:
        self._store.advance(place.topic, place.partition, place.offset + 1, delivered=delivered)

    def _counted(self, outcome: Outcome) -> Outcome:
        self._metrics.count(outcome)
        return outcome

    def _dead_letter(
        self,
        place: Place,
        reason: str,
        notification: MatchNotification | None,
        *,
        error_type: str | None = None,
    ) -> Outcome:
        # ``notification`` is set only once its signature verified: the ids of a
        # forged message could carry anything, so they are not written.
        self._dead.write(
            DeadLetter(
                service=self.settings.service,
                topic=place.topic,
                partition=place.partition,
                offset=place.offset,
                reason=reason,
                notification_id=notification.notification_id if notification else None,
                agreement_id=notification.agreement_id if notification else None,
                error_type=error_type,
            )
        )
        log.warning(
            "dead-lettered %s[%d]@%d: %s", place.topic, place.partition, place.offset, reason
        )
        self._advance(place)
        self._metrics.count("dead-lettered", reason)
        return "dead-lettered"
