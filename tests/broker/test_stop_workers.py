"""The end-to-end tests' stop helper: a worker that will not stop is killed, never left running."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.broker.workers import stop_workers

#: A process that ignores SIGTERM (as a worker wedged on its stop does), and says
#: so once it does: the test stops it only after that line, never before. It
#: then waits for a signal that ends it (an ignored one does not).
_STUBBORN = (
    "import signal\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "signal.pause()\n"
)


def _stubborn() -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", _STUBBORN], stdout=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    return process


def _obedient() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])


def test_workers_that_stop_are_waited_for() -> None:
    workers = [_obedient(), _obedient()]
    stop_workers(workers, timeout=30)
    assert [w.returncode for w in workers] == [-15, -15]


def test_a_worker_that_outlives_the_deadline_is_killed_and_the_stop_fails() -> None:
    workers = [_obedient(), _stubborn(), _stubborn()]
    with pytest.raises(subprocess.TimeoutExpired):
        stop_workers(workers, timeout=1)
    assert [w.returncode for w in workers] == [-15, -9, -9]  # none left running


def test_workers_already_gone_are_skipped() -> None:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    stop_workers([done], timeout=1)
    assert done.returncode == 0
