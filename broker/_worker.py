"""The Faust worker the broker runs: Faust's, without the progress spinner's DEBUG root logger.

At a log level of WARN or above, ``faust.Worker`` keeps its terminal spinner
and, to advance it on every log call, sets the root logger to DEBUG
(``Worker._setup_spinner_handler``), whether or not anyone watches a
terminal. Every ``log.debug`` in aiokafka, Faust and mode then builds a
record (``findCaller`` walks the stack) that the handlers drop: one or more
per Kafka message sent. Profiled at 131 events/s offered (issue 15) that was
about 5% of the worker's CPU, in a worker that had none to spare.
"""

from __future__ import annotations

import logging

import faust

__all__ = ["QuietWorker"]


class QuietWorker(faust.Worker):
    """``faust.Worker`` that leaves the root logger at the level it was asked for."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
