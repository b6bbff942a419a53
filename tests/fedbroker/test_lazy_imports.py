"""The Kafka-free parts load no stream-processing machinery (issue 14 item 4).

``fedbroker link`` runs on a clerk's laptop with no Kafka: importing it, or the
broker's pure matcher, must not import Faust (and with it aiokafka and mode).
Each check runs in a fresh interpreter, since this test process has long since
imported Faust through other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("faust", "mode", "aiokafka")


def _loaded_after(statement: str) -> list[str]:
    probe = (
        f"import sys, json\n{statement}\n"
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    )
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "statement",
    [
        "import fedbroker.link",
        "from fedbroker.link import link_files",
        "import broker",
        "from broker import Matcher, Sighting, run_batch, fit_threshold, dice",
        "import fedbroker",
    ],
)
def test_pure_imports_leave_faust_unloaded(statement):
    assert _loaded_after(statement) == []


def test_the_faust_app_still_loads_on_first_use():
    # The probe itself must be able to fail: reaching for the app loads Faust.
    assert "faust" in _loaded_after("from broker import build_app, BrokerSettings")


def test_an_unknown_name_is_still_an_attribute_error():
    import broker

    with pytest.raises(AttributeError, match="no_such_name"):
        _ = broker.no_such_name  # type: ignore[attr-defined]
