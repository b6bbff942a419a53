"""``fedbroker demo`` as a user runs it: live, headless, on the shared Kafka, checked.

The demo's own summary is parsed and held to what it claims, and the files its
subscribers wrote are checked independently (no notification id twice). That
run is the session's one run of the README's demo line (``quickstart_demo``). A
broker killed mid-run must make the demo fail, not print a verified empty audit
chain and exit 0 as it once did.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from tests.demo_run import DEMO_TIMEOUT_S

REPO = Path(__file__).resolve().parents[2]


def _env(bootstrap: str, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "FEDBROKER_HOME": str(home),
        "PYTHONPATH": str(REPO),
    }


def _demo(*options: str) -> list[str]:
    return [sys.executable, "-m", "fedbroker", "demo", *options]


@contextmanager
def _demo_until(
    bootstrap: str, tmp_path: Path, people: int, markers: tuple[str, ...]
) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """A plain demo read until a line starts with one of ``markers``.

    It runs in a session of its own: when the block ends, whatever of it is still
    running is killed, its children too (a failed assertion once left a demo's
    four subscribers running after the demo was killed).
    """
    demo = subprocess.Popen(
        _demo("--people", str(people), "--duration", "60", "--plain"),
        cwd=tmp_path, env=_env(bootstrap, tmp_path / "home"), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            if line.startswith(markers):
                break
        yield demo, lines
    finally:
        with suppress(ProcessLookupError):
            os.killpg(demo.pid, signal.SIGKILL)
        demo.wait(timeout=30)


def _children(pid: int) -> dict[int, str]:
    """Live child processes of ``pid`` that run a component, and their command lines.

    Not the connectors' build workers: forks of the demo itself (its command
    line), alive only while a connector's pass builds rows, so whether one is
    there depends on the instant looked at.
    """
    own = (Path(f"/proc/{pid}/cmdline")).read_bytes().replace(b"\0", b" ").decode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z" and cmdline != own:
            found[int(entry.name)] = cmdline
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


@pytest.mark.slow
@pytest.mark.kafka
@pytest.mark.timeout(DEMO_TIMEOUT_S + 60)
def test_the_demo_runs_live_headless_and_its_summary_holds_against_the_truth(quickstart_demo):
    out = quickstart_demo.output
    assert quickstart_demo.returncode == 0, out[-5000:]
    # Headless: periodic plain lines, no terminal control codes, no client errors.
    assert "\x1b[" not in out
    assert len(re.findall(r"^streaming: ", out, re.MULTILINE)) >= 3, out[-3000:]
    assert " ERROR " not in out and "Traceback" not in out, out[-3000:]
    truth = re.search(r"ground truth: (\d+) disclosures expected .*?; (\d+) found", out)
    assert truth, out[-3000:]
    expected, found = int(truth[1]), int(truth[2])
    assert expected >= 20 and found >= 0.7 * expected, truth[0]
    delivery = re.search(
        r"delivery: (\d+) notifications on the watched topics, 0 not handed over, "
        r"0 handed over twice; 0 that consent forbids",
        out,
    )
    assert delivery and int(delivery[1]) >= found, out[-3000:]
    # Residents objected before their events arrived, the broker denied them, and no
    # subscriber received them (the "0 that consent forbids" above is not vacuous).
    assert re.search(r"consent: [1-9]\d* residents objected to gm-multiple-disadvantage", out)
    assert re.search(r"decided gm-multiple-disadvantage denied \[objected\]: [1-9]", out)
    assert re.search(r"audit chain: [1-9]\d* records, verified", out)
    assert re.search(r"privacy scan of \d+ topics \S+: 0 clear values found", out)
    assert "nothing left running but Kafka" in out
    assert "demo OK: every check held" in out
    # Independently of the demo's word: its JSON Lines subscribers never wrote an id twice.
    files = list((quickstart_demo.home / "demo").glob("*/delivered/*.jsonl"))
    assert len(files) == 3
    ids = [
        json.loads(line)["notification_id"] for f in files for line in f.read_text().splitlines()
    ]
    assert ids and len(ids) == len(set(ids))


@pytest.mark.slow
@pytest.mark.kafka
@pytest.mark.timeout(600)
def test_the_demo_fails_when_its_broker_is_killed_and_leaves_nothing_running(
    kafka_bootstrap, tmp_path
):
    flowing = ("streaming: ",)  # the broker is up and rows are flowing
    with _demo_until(kafka_bootstrap, tmp_path, 100, flowing) as (demo, lines):
        children = _children(demo.pid)
        brokers = [pid for pid, cmd in children.items() if " broker run " in cmd]
        assert len(brokers) == 1 and len(children) == 5, (children, "".join(lines))
        os.kill(brokers[0], signal.SIGKILL)
        rest, _ = demo.communicate(timeout=300)
    out = "".join(lines) + rest
    assert demo.returncode != 0, out[-3000:]
    assert re.search(r"FAILED: a component died: broker \(exit -9", out), out[-3000:]
    assert "demo OK" not in out
    assert "nothing left running but Kafka" in out
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in children if _alive(pid)]


@pytest.mark.slow
@pytest.mark.kafka
@pytest.mark.timeout(300)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_a_signal_stops_every_child_cleanly_and_says_so(kafka_bootstrap, tmp_path, signum):
    started = ("starting: ", "streaming: ")
    with _demo_until(kafka_bootstrap, tmp_path, 50, started) as (demo, lines):
        children = _children(demo.pid)
        assert len(children) == 5, "".join(lines)
        demo.send_signal(signum)
        rest, _ = demo.communicate(timeout=120)
    out = "".join(lines) + rest
    assert demo.returncode == 128 + signum, out[-3000:]
    name = signal.Signals(signum).name
    assert f"interrupted by {name}: shut down cleanly" in out
    assert "stopped 5 child processes; nothing left running but Kafka" in out
    assert "had to be killed" not in out and "Traceback" not in out, out[-3000:]
    assert not [pid for pid in children if _alive(pid)]
