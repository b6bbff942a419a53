"""kill -9 of a subscriber process, then a restart: nothing handed over twice, nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

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


def _crashing(federation, bootstrap, topic, group, state, out, **how):
    config = {
        "bootstrap": bootstrap, "service": SERVICE, "topic": topic, "group": group,
        "state": str(state), "out": str(out), "directory": str(federation.directory_path),
        "trust_anchor": str(federation.trust_anchor),
        "key": str(federation.keys[SERVICE].sealing.private), **how,
    }  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "tests.subscriber.crashing_subscriber", json.dumps(config)],
        cwd=REPO, capture_output=True, timeout=120, check=False,
    )  # fmt: skip


def test_kill_9_between_hand_over_and_commit_then_restart_hands_nothing_over_twice(
    federation, kafka_bootstrap, notify_topic, topic_factory, tmp_path
):
    sent = [notification_bytes(federation, n) for n in range(1, 11)]
    publish(kafka_bootstrap, notify_topic, sent)
    group, state, out = topic_factory("group"), tmp_path / "state", tmp_path / "out.jsonl"
    crashed = _crashing(federation, kafka_bootstrap, notify_topic, group, state, out,
                        die_after=4)  # fmt: skip
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


def test_the_command_hands_over_to_a_webhook_and_dead_letters_a_forgery(
    federation, kafka_bootstrap, notify_topic, topic_factory, tmp_path
):
    from consent import generate_signing_key
    from tests.ports import free_port
    from tests.subscriber.webhook_server import serve

    good = [notification_bytes(federation, n) for n in (1, 2)]
    forged = notification_bytes(federation, 3, signer=generate_signing_key())
    publish(kafka_bootstrap, notify_topic, [good[0], forged, good[1], good[0]])
    port, state = free_port(), tmp_path / "state"
    command = _subscribe(federation, kafka_bootstrap, notify_topic, topic_factory("group"),
                         state, "unused")  # fmt: skip
    at = command.index("--jsonl")
    command[at : at + 2] = ["--webhook", f"http://127.0.0.1:{port}/in", "--timeout", "5"]
    with serve(port, statuses=[503]) as hook:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert hook.ids() == [nid for nid, _ in good]
    assert "2 delivered, 1 duplicates, 1 dead-lettered" in result.stderr
    letters = [json.loads(line) for line in (state / "dead-letters.jsonl").read_text().splitlines()]
    assert [(d["reason"], d["offset"], d["notification_id"]) for d in letters] == [
        ("signature-invalid", 1, None)
    ]


def test_a_notification_that_kills_the_process_every_time_is_set_aside_after_bounded_deaths(
    federation, kafka_bootstrap, notify_topic, topic_factory, tmp_path
):
    good = [notification_bytes(federation, n) for n in (1, 2)]
    poison_id, poison = notification_bytes(federation, 66)
    publish(kafka_bootstrap, notify_topic, [good[0], (poison_id, poison), good[1]])
    group, state, out = topic_factory("group"), tmp_path / "state", tmp_path / "out.jsonl"
    # The first run hands good[0] over, then dies on the poison; three more runs
    # start on it and die (each counted in the store before it is handled).
    for _ in range(4):
        died = _crashing(federation, kafka_bootstrap, notify_topic, group, state, out,
                         die_on=poison_id)  # fmt: skip
        assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]
    final = subprocess.run(
        _subscribe(federation, kafka_bootstrap, notify_topic, group, state, out,
                   "--max-messages", "1", "--timeout", "60"),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert final.returncode == 0, final.stderr[-2000:]
    assert _ids(out) == [nid for nid, _ in good]
    letters = [json.loads(line) for line in (state / "dead-letters.jsonl").read_text().splitlines()]
    assert [(d["reason"], d["offset"]) for d in letters] == [("crashed-repeatedly", 1)]


def test_the_command_refuses_a_directory_older_than_one_it_accepted(
    federation, kafka_bootstrap, notify_topic, topic_factory, tmp_path
):
    """An older directory put back would bring a revoked broker key back (hostile review)."""
    import yaml

    from consent import sign_directory

    def signed_at(serial: int) -> Path:
        doc = yaml.safe_load(federation.document_path.read_text())
        doc["serial"] = serial
        path = tmp_path / f"directory-{serial}.signed"
        text = yaml.safe_dump(doc, sort_keys=False)
        path.write_bytes(sign_directory(text, federation.signing_key("gmca")))
        return path

    newer, older = signed_at(2), signed_at(1)
    group, state, out = topic_factory("group"), tmp_path / "state", tmp_path / "out.jsonl"

    def run(directory: Path) -> subprocess.CompletedProcess[str]:
        command = _subscribe(federation, kafka_bootstrap, notify_topic, group, state, out,
                             "--timeout", "2")  # fmt: skip
        command[command.index("--directory") + 1] = str(directory)
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    accepted = run(newer)
    assert accepted.returncode == 0, accepted.stderr[-2000:]
    refused = run(older)
    assert refused.returncode != 0
    assert "directory-rolled-back" in refused.stderr or "rolled back" in refused.stderr.lower()


def test_sigterm_ends_the_command_promptly_while_its_webhook_hangs(
    federation, kafka_bootstrap, notify_topic, topic_factory, tmp_path
):
    """The stop arrives in a signal handler on the thread that is waiting on the webhook."""
    import socket

    from tests.ports import free_port

    publish(kafka_bootstrap, notify_topic, [notification_bytes(federation, 1)])
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))
    listener.settimeout(90)
    command = _subscribe(federation, kafka_bootstrap, notify_topic, topic_factory("group"),
                         tmp_path / "state", "unused")  # fmt: skip
    at = command.index("--jsonl")
    command[at : at + 2] = ["--webhook", f"http://127.0.0.1:{port}/in"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        held, _ = listener.accept()  # the hand-over reached the webhook, which never answers
        with held:
            held.recv(65536)
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=8)  # not the 5 tries of 10 s
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        listener.close()
    assert process.returncode == 0, stderr[-2000:]
    assert "0 delivered" in stderr
