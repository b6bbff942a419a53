"""A metrics port that cannot be bound is a one-line typed error, not a traceback.

An operator who starts a second worker, connector or subscriber on the port
the first already serves must read which port and why, with the component's
own reason code, as ``fedbroker``'s entry point prints every FedbrokerError.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from broker._metrics import BrokerMetrics
from connectors import ConnectorMetrics
from schemas import FedbrokerError
from subscriber import SubscriberMetrics
from tests.ports import free_port


@pytest.fixture
def taken_port() -> Iterator[int]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    yield holder.getsockname()[1]
    holder.close()


SERVERS: dict[str, Callable[[int], None]] = {
    "broker": lambda port: BrokerMetrics().serve(port),
    "connector": lambda port: ConnectorMetrics().serve(port),
    "subscriber": lambda port: SubscriberMetrics().serve(port),
}


@pytest.mark.parametrize("component", sorted(SERVERS))
def test_a_port_in_use_is_a_typed_error_naming_the_port(component: str, taken_port: int):
    with pytest.raises(FedbrokerError) as raised:
        SERVERS[component](taken_port)
    assert raised.value.reason == "metrics-port-unavailable"
    assert f"127.0.0.1:{taken_port}" in str(raised.value)
    assert isinstance(raised.value.__cause__, OSError)


@pytest.mark.parametrize("component", sorted(SERVERS))
def test_port_zero_serves_nothing_and_a_free_port_serves(component: str):
    SERVERS[component](0)  # disabled: nothing to bind, nothing raised
    port = free_port()
    SERVERS[component](port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        assert reply.status == 200
