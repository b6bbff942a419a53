"""The tests' port registry: no two tests share a port, and none is a client's.

Two tests once bound the same metrics port from two xdist workers and one of
them failed at random; these checks keep every port in ``tests/ports.py``.
"""

from __future__ import annotations

import inspect
import re
import socket
from pathlib import Path

import pytest

from bench import _broker_kafka
from bench.broker import BENCH_PORT
from tests import ports

TESTS = Path(__file__).resolve().parent


def test_no_two_owners_share_a_port():
    owners: dict[int, str] = {}
    for owner, taken in ports.allocations().items():
        for port in taken:
            assert port not in owners, f"{port} is both {owners[port]}'s and {owner}'s"
            owners[port] = owner


def test_every_port_is_below_this_hosts_ephemeral_range():
    """Outgoing connections draw their local port from that range: one could
    hold a test's port just when the test binds it."""
    first, _ = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    assert ports.EPHEMERAL_START <= int(first)
    highest = max(p for taken in ports.allocations().values() for p in taken)
    assert highest < int(first)


def test_the_benches_ports_are_reserved_so_a_bench_beside_the_tests_meets_none():
    assert ports.kafka_port("bench") == BENCH_PORT
    start = inspect.signature(_broker_kafka.free_port).parameters["start"].default
    assert ports.SERVERS["bench-workers"] == tuple(range(start, start + 200))


def test_no_test_module_picks_a_port_of_its_own():
    literal = re.compile(r"\b29\d{3}\b")
    offenders = [
        f"{path.relative_to(TESTS)}:{n}"
        for path in TESTS.rglob("*.py")
        if "node_modules" not in path.parts and path.name not in {"ports.py", "test_ports.py"}
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if literal.search(line)
    ]
    assert offenders == [], "ports belong in tests/ports.py"


def test_free_ports_come_from_this_workers_block_and_differ_call_to_call():
    given = [ports.free_port() for _ in range(5)]
    assert len(set(given)) == 5
    block = {p for owner, taken in ports.allocations().items() if owner.startswith("free:")
             for p in taken}  # fmt: skip
    assert set(given) <= block
    for port in given:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))


def test_a_port_in_use_is_never_given_and_a_full_block_says_so():
    held: dict[int, socket.socket] = {}
    try:
        with pytest.raises(RuntimeError, match="is in use"):
            for _ in range(ports.FREE_BLOCK + 1):
                port = ports.free_port()
                assert port not in held
                held[port] = socket.socket()
                held[port].bind(("127.0.0.1", port))
                held[port].listen()
    finally:
        for sock in held.values():
            sock.close()
