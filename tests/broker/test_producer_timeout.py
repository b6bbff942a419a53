"""A produce request that gets no answer times out in 30 s, not in Faust's 20 minutes."""

from __future__ import annotations

from pathlib import Path

import faust

from tests.broker.test_table import broker_app


def test_the_workers_produce_requests_time_out_as_kafkas_own_clients_do(tmp_path: Path) -> None:
    """A CI run saw a notification pending for 17 minutes with nothing logged."""
    given = broker_app(tmp_path).producer._settings_default()  # noqa: SLF001 - aiokafka's
    assert given["request_timeout_ms"] == 30_000
    assert faust.App("upstream").conf.producer_request_timeout == 1200.0, "Faust's default changed"
