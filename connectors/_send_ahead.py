"""Publishing that overlaps reading: one step's records travel while the next is built.

A large file is read in steps (``ROWS_PER_STEP`` rows, each committed to the
outbox with the file's progress). Once a step is committed its records are
handed to the producer, whose own thread transmits them while the build
workers (``connectors._build_pool``) make the next steps; the step's
acknowledgements are judged only when the next step is committed. Events thus
reach Kafka while the rest of a large file is read, not after it.

Nothing about durability changes: a record is sent only after its step has
committed, and leaves the outbox only once Kafka has acknowledged it. When
Kafka is down or acknowledges part of a step, sending ahead stops for the rest
of the reading pass and the connector's ordinary publishing step takes over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from connectors._errors import KafkaUnavailable
from connectors._outbox import Outbox
from connectors._publisher import Publisher, PublishOutcome, Sending

__all__ = ["ROWS_PER_STEP", "SendAhead"]

logger = logging.getLogger(__name__)

#: Rows a reading step builds and commits at once: large enough that a step's
#: fixed costs (one transaction, one HPKE encapsulation per recipient) are
#: small, small enough that the first and last steps, which cannot overlap,
#: are a small share of a large file.
ROWS_PER_STEP = 1000

_MAX_SENT = 2 * ROWS_PER_STEP


class SendAhead:
    """Sends each committed step while the next is read; one reading pass only."""

    def __init__(
        self,
        outbox: Outbox,
        publisher: Publisher,
        account: Callable[[PublishOutcome], None],
    ) -> None:
        self._outbox = outbox
        self._publisher = publisher
        self._account = account
        self._sending: Sending | None = None
        self._sent_through = 0  # outbox sequence number of the last record handed over
        self._stopped = False
        self.acknowledged = 0  # records Kafka acknowledged in this pass

    def step_committed(self) -> None:
        """Judge the step in flight, then hand over what has been committed since."""
        self.settle()
        if self._stopped:
            return
        entries = self._outbox.pending(_MAX_SENT, after=self._sent_through)
        if not entries:
            return
        try:
            self._sending = self._publisher.begin(entries)
        except KafkaUnavailable as exc:
            self._stop(exc)
            return
        self._sent_through = entries[-1].seq

    def settle(self) -> None:
        """Wait for the step in flight, if any, and account for what Kafka said."""
        sending, self._sending = self._sending, None
        if sending is None:
            return
        try:
            outcome = self._publisher.complete(sending)
        except KafkaUnavailable as exc:
            self._stop(exc)
            return
        self._account(outcome)
        self.acknowledged += len(outcome.acknowledged)
        if outcome.pending:
            self._stop(KafkaUnavailable(f"{outcome.pending} records not acknowledged"))

    def _stop(self, exc: KafkaUnavailable) -> None:
        self._stopped = True
        logger.info("sending ahead stops for this pass (%s); publishing catches up", exc)
