"""``fedbroker_broker_ready`` says 1 only while the worker reads its inputs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from broker._timers import ready


def _app(*, assigned: bool, recovered: bool, rebalancing: bool) -> SimpleNamespace:
    assignment = {("fed.events.E08000001", 0)} if assigned else set()
    return SimpleNamespace(
        consumer=SimpleNamespace(assignment=lambda: assignment),
        tables=SimpleNamespace(actives_ready=recovered),
        rebalancing=rebalancing,
    )


def test_a_worker_holding_recovered_partitions_is_ready():
    assert ready(_app(assigned=True, recovered=True, rebalancing=False))


@pytest.mark.parametrize(
    ("assigned", "recovered", "rebalancing"),
    [(False, True, False), (True, False, False), (True, True, True), (False, False, True)],
)
def test_a_worker_without_partitions_recovering_or_rebalancing_is_not(
    assigned, recovered, rebalancing
):
    assert not ready(_app(assigned=assigned, recovered=recovered, rebalancing=rebalancing))
