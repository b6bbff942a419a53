"""Session-wide fixtures: one real Kafka broker for the whole run, unique names per test.

Also ``synced_folders``, for the tests that folders are fsynced (consent's and
the subscriber's files).

``make test`` runs the suite on two pytest-xdist workers (``--dist loadgroup``)
sharing one Kafka it started. ``pytest_collection_modifyitems`` keeps each
module on one worker (module fixtures start clusters on fixed ports), sends the
modules that run three Kafka nodes to one worker, and puts the slow groups first
so the two workers finish together. The one quickstart demo is shared across
workers by ``quickstart_demo`` itself (``tests.demo_run.shared_quickstart_demo``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.demo_run import DemoRun, run_quickstart_demo, shared_quickstart_demo
from tests.kafka_fixtures import kafka_bootstrap_servers, unique_name

REPO = Path(__file__).resolve().parent.parent

#: Modules that each start three Kafka nodes: one at a time on a two-core machine.
THREE_NODES = frozenset({
    "tests/fedbroker/test_three_node_faults.py",
    "tests/fedbroker/test_secure_replication.py",
    "tests/fedbroker/test_localkafka.py",
})  # fmt: skip


def _group(item: pytest.Item) -> str:
    module = item.nodeid.split("::", 1)[0]
    return "three-kafka-nodes" if module in THREE_NODES else module


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group tests for pytest-xdist's ``loadgroup`` and run the slow groups first.

    Runs before xdist's own hook, which turns ``xdist_group`` marks into work units.
    Each group stays together (its module fixtures are set up once).
    """
    first: dict[str, int] = {}
    slow: set[str] = set()
    for index, item in enumerate(items):
        group = _group(item)
        item.add_marker(pytest.mark.xdist_group(group))
        first.setdefault(group, index)
        if item.get_closest_marker("slow") is not None:
            slow.add(group)
    order = {item.nodeid: index for index, item in enumerate(items)}
    items.sort(key=lambda i: (_group(i) not in slow, first[_group(i)], order[i.nodeid]))


@pytest.fixture(scope="session")
def fedbroker_home() -> Path:
    """The project's cache home, so the Kafka jars are downloaded once per machine."""
    return REPO / ".fedbroker"


@pytest.fixture(scope="session")
def kafka_bootstrap(fedbroker_home: Path) -> Iterator[str]:
    """Bootstrap address of a real Kafka broker shared by every test in the session."""
    with kafka_bootstrap_servers(fedbroker_home) as bootstrap:
        yield bootstrap


@pytest.fixture
def topic_factory() -> Callable[[str], str]:
    """Gives each test its own topic names, so tests never see each other's messages."""
    return unique_name


@pytest.fixture(scope="session")
def quickstart_demo(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> DemoRun:
    """The README's ``fedbroker demo`` line, run once for every test that reads a whole demo.

    Tests that use it need a timeout of at least ``tests.demo_run.DEMO_TIMEOUT_S``:
    the first of them to run pays for the demo. Under pytest-xdist the workers'
    temporary folders share a parent, where the one run is kept for all of them.
    """
    if worker_id == "master":  # not distributed
        return run_quickstart_demo(kafka_bootstrap, tmp_path_factory.mktemp("quickstart-demo"))
    return shared_quickstart_demo(kafka_bootstrap, tmp_path_factory.getbasetemp().parent)


@pytest.fixture
def synced_folders(monkeypatch) -> list[Path]:
    """Every folder fsynced from now on, in order."""
    folders: list[Path] = []
    real = os.fsync

    def recording(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            folders.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return folders
