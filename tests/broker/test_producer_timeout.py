"""A produce request that gets no answer times out in 30 s, not in Faust's 20 minutes."""

from __future__ import annotations

from pathlib import Path

import faust

from broker._settings import BrokerSettings
from broker.app import make_faust_app


def test_the_workers_produce_requests_time_out_as_kafkas_own_clients_do(tmp_path: Path) -> None:
    """A CI run saw a notification pending for 17 minutes with nothing logged."""
    settings = BrokerSettings(
        bootstrap="127.0.0.1:1", directory=tmp_path / "d", trust_anchor=tmp_path / "t",
        signing_key=tmp_path / "k", app_id="group", data_dir=tmp_path / "data",
        store="memory://",
    )  # fmt: skip
    app = make_faust_app(settings, 1)
    given = app.producer._settings_default()  # noqa: SLF001 - what aiokafka is given
    assert given["request_timeout_ms"] == 30_000
    assert faust.App("upstream").conf.producer_request_timeout == 1200.0, "Faust's default changed"
