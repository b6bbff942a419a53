"""``build_workers`` defaults to the cores the connector may run on, not the machine's.

A connector pinned to a few cores (``taskset``, a container's cpuset) on a large
host forked one worker per host core: dozens of processes, each building two
steps ahead, on two usable cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

_DEFAULT_WHEN_PINNED = """
import os
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
from connectors._config import DEFAULT_BUILD_WORKERS
print(DEFAULT_BUILD_WORKERS)
"""


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or (os.cpu_count() or 1) < 2,
    reason="needs CPU affinity and more than one core",
)
def test_a_connector_pinned_to_one_core_builds_with_one_worker():
    found = subprocess.run(
        [sys.executable, "-c", _DEFAULT_WHEN_PINNED],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert int(found.stdout) == 1
