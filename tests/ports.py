"""Every TCP port the tests bind, allocated in one place so that no two tests meet.

The suite runs in parallel (pytest-xdist), so two tests that choose the same port
fail each other at random: a metrics port of one test was once another's, and the
one that bound second failed. Every port here sits below the kernel's ephemeral
range (32768 and up), which outgoing connections draw from, so no client socket
holds one either. ``tests/test_ports.py`` checks that no two allocations overlap.

- Fixed ports: a local Kafka cluster's nodes take ``first .. first + nodes - 1``
  and its controllers the same plus ``CONTROLLER_PORT_OFFSET``; other servers
  take the ports listed.
- :func:`free_port`: ports a test needs but need not know in advance (a worker's
  metrics, a webhook), drawn from a block of its own per xdist worker.
"""

from __future__ import annotations

import os
import socket
from itertools import count

from fedbroker._localkafka import CONTROLLER_PORT_OFFSET

EPHEMERAL_START = 32768

#: A local Kafka cluster's first port -> its node count.
KAFKA_CLUSTERS: dict[str, tuple[int, int]] = {
    "test": (int(os.environ.get("FEDBROKER_TEST_KAFKA_PORT", "29092")), 1),
    "connector-outage": (29192, 1),
    "localkafka-cli": (29292, 1),
    # Directory names only: these tests never start the node.
    "localkafka-stale-pid": (29342, 1),
    "localkafka-bystander": (29343, 1),
    "localkafka-identity": (29344, 1),
    "localkafka-jars": (29352, 1),
    "localkafka-config-trio": (29360, 3),
    "localkafka-config-single": (29364, 1),
    "localkafka-trio": (29392, 3),
    "secure-kafka": (29410, 1),
    "secure-replication": (29420, 3),
    "secure-e2e": (29430, 1),
    "three-node-faults": (29450, 3),
    "demo-secure": (29460, 1),
    "wheel": (29470, 1),
    "secure-settings": (29499, 1),
    "bench": (29492, 1),  # bench/broker.py and bench/connector.py, never a test's
}

#: Other servers' fixed ports.
SERVERS: dict[str, tuple[int, ...]] = {
    "prometheus-test": (29097, 29090),  # broker metrics, Prometheus
    "decisions-metrics": (29099,),
    "dashboard": (29171, 29172, 29173, 29174),  # broker, origin, destination, Prometheus
    "compose-kafka": (29181, 29182),  # Kafka, its controller
    "bench-workers": tuple(range(29600, 29800)),  # bench/_broker_kafka.free_port
}

#: ``free_port`` blocks: xdist worker ``gwN`` draws from ``FREE_START + N * FREE_BLOCK``.
FREE_START, FREE_BLOCK, FREE_WORKERS = 27000, 200, 10


def kafka_port(name: str) -> int:
    """The first port of the local Kafka cluster the registry gives ``name``."""
    return KAFKA_CLUSTERS[name][0]


def allocations() -> dict[str, list[int]]:
    """Every reserved port by owner: fixed ones and each worker's free block."""
    taken: dict[str, list[int]] = {}
    for name, (first, nodes) in KAFKA_CLUSTERS.items():
        nodes_ports = list(range(first, first + nodes))
        taken[f"kafka:{name}"] = nodes_ports + [p + CONTROLLER_PORT_OFFSET for p in nodes_ports]
    for name, ports in SERVERS.items():
        taken[f"server:{name}"] = list(ports)
    for worker in range(FREE_WORKERS):
        start = FREE_START + worker * FREE_BLOCK
        taken[f"free:gw{worker}"] = list(range(start, start + FREE_BLOCK))
    return taken


def _worker_index() -> int:
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(name.removeprefix("gw") or 0)
    if index >= FREE_WORKERS:
        raise RuntimeError(f"tests/ports.py has free-port blocks for {FREE_WORKERS} workers")
    return index


_next = count()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now, from this worker's own block.

    Successive calls walk the block, so a port just handed to a server that has
    not bound it yet is not handed out again until the walk wraps round.
    """
    start = FREE_START + _worker_index() * FREE_BLOCK
    for _ in range(FREE_BLOCK):
        port = start + next(_next) % FREE_BLOCK
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"every port in {start}..{start + FREE_BLOCK - 1} is in use")
