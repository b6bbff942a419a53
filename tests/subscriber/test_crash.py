"""kill -9 of a subscriber process, then a restart: nothing handed over twice, nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

from tests.connectors.conftest import REPO
from tests.subscriber.conftest import publish, wait_for
from tests.subscriber.factory import SERVICE, notification_bytes

pytestmark = pytest.mark.kafka


def _subscribe(federation, bootstrap, topic, group, state, out, *extra):
    return [
        str(REPO / ".venv/bin/fedbroker"), "subscribe", "--bootstrap", bootstrap,
        "--service", SERVICE, "--key", str(federation.keys[SERVICE].sealing.private),
        "--directory", str(federation.directory_path),
        "--trust-anchor", str(federation.trust_anchor), "--topic", topic, "--group", group,
        "--state", str(state), "--jsonl", str(out), *extra,
    ]  # fmt: skip


def _ids(out):
    return [json.loads(line)["notification_id"] for line in out.read_text().splitlines()]


def test_kill_9_between_hand_over_and_commit_then_restart_hands_nothing_over_twice(
    federation, kafka_bootstrap, notify_topic, topic_factory, tmp_path
):
    sent = [notification_bytes(federation, n) for n in range(1, 11)]
    publish(kafka_bootstrap, notify_topic, sent)
    group, state, out = topic_factory("group"), tmp_path / "state", tmp_path / "out.jsonl"
    config = {
        "bootstrap": kafka_bootstrap, "service": SERVICE, "topic": notify_topic,
        "group": group, "state": str(state), "out": str(out), "die_after": 4,
        "directory": str(federation.directory_path),
        "trust_anchor": str(federation.trust_anchor),
        "key": str(federation.keys[SERVICE].sealing.private),
    }  # fmt: skip
    crashed = subprocess.run(
        [sys.executable, "-m", "tests.subscriber.crashing_subscriber", json.dumps(config)],
        cwd=REPO, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert len(_ids(out)) == 4  # the fourth is in the file; the store still says pending

    restarted = subprocess.run(
        _subscribe(federation, kafka_bootstrap, notify_topic, group, state, out,
                   "--max-messages", "6", "--timeout", "60"),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    assert "6 delivered, 1 duplicates" in restarted.stderr
    assert _ids(out) == [nid for nid, _ in sent]


@pytest.mark.slow
def test_kill_9_at_random_moments_under_load_never_doubles_or_loses_a_notification(
    federation, kafka_bootstrap, notify_topic, topic_factory, tmp_path
):
    sent = [notification_bytes(federation, n) for n in range(1, 151)]
    publish(kafka_bootstrap, notify_topic, sent)
    group, state, out = topic_factory("group"), tmp_path / "state", tmp_path / "out.jsonl"
    command = _subscribe(federation, kafka_bootstrap, notify_topic, group, state, out)
    lines = lambda: len(out.read_text().splitlines()) if out.exists() else 0  # noqa: E731
    for goal in (20, 50, 80, 110):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda goal=goal: lines() >= goal, timeout=120, what=f"{goal} lines")
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    final = subprocess.run(
        [*command, "--timeout", "8"], capture_output=True, text=True, timeout=180, check=False
    )
    assert final.returncode == 0, final.stderr[-2000:]
    counts = Counter(_ids(out))
    assert [nid for nid, n in counts.items() if n > 1] == []
    assert set(counts) == {nid for nid, _ in sent}
