"""The broker's Faust worker keeps the root logger at the asked level (issue 15 latency)."""

from __future__ import annotations

import logging

import faust

from broker._settings import FAUST_TUNING


def _root_after_setup(worker_class: type[faust.Worker]) -> logging.Logger:
    worker = worker_class.__new__(worker_class)  # only the logging hook is under test
    worker.spinner = faust.utils.terminal.Spinner()
    logger = logging.Logger("root-under-test", logging.WARNING)
    logger.addHandler(logging.NullHandler())
    worker.on_setup_root_logger(logger, logging.WARNING)
    return logger


def test_faust_worker_at_warn_turns_debug_records_on():
    """The upstream behaviour the broker works around: a record per debug call."""
    assert _root_after_setup(faust.Worker).isEnabledFor(logging.DEBUG)


def test_the_broker_worker_leaves_debug_records_off():
    worker_class = FAUST_TUNING["Worker"]
    logger = _root_after_setup(worker_class)
    assert not logger.isEnabledFor(logging.DEBUG)
    assert logger.level == logging.WARNING
