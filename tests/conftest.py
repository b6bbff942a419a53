"""Session-wide fixtures: one real Kafka broker for the whole run, unique names per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.demo_run import DemoRun, run_quickstart_demo
from tests.kafka_fixtures import kafka_bootstrap_servers, unique_name

REPO = Path(__file__).resolve().parent.parent


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
def quickstart_demo(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The README's ``fedbroker demo`` line, run once for every test that reads a whole demo.

    Tests that use it need a timeout of at least ``tests.demo_run.DEMO_TIMEOUT_S``:
    the first of them to run pays for the demo.
    """
    return run_quickstart_demo(kafka_bootstrap, tmp_path_factory.mktemp("quickstart-demo"))
