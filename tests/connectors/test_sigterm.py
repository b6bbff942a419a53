"""SIGTERM stops ``connector run`` between steps, not at the end of its pass.

A deployment stopping a pod sends SIGTERM and waits a grace period (30 s by
default) before SIGKILL. The connector set its stop flag and went on reading
the file in hand to its end: minutes for a large extract, so the stop always
ended in a kill. Stopped between steps, what it committed stays committed
(the file's rows read so far), the file stays in the inbox, and the next run
reads on from there: nothing lost, nothing sent twice.
"""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess

import pytest

from connectors import Outbox, generate_federation
from schemas import CitizenEvent, Codec
from tests.connectors.conftest import COUNCILS, REPO, read_topic, run_connector
from tests.connectors.processes import until
from tests.wire import body_of

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _rows_done(outbox: str) -> int:
    try:
        with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True) as db:
            row = db.execute("SELECT max(rows_done) FROM file_progress").fetchone()
    except sqlite3.OperationalError:  # not created yet
        return 0
    return int(row[0] or 0)


def test_sigterm_mid_file_stops_between_steps_and_the_next_run_goes_on(
    council_factory, kafka_bootstrap, tmp_path
):
    setup = council_factory(COUNCILS[0])
    synth = generate_federation(tmp_path / "big", councils=[setup.council], people=8000,
                                error_rate=0.0)  # fmt: skip
    with synth.files[setup.council].open(newline="", encoding="utf-8") as handle:
        rows = sum(1 for _ in csv.DictReader(handle))
    assert rows >= 15_000
    os.replace(synth.files[setup.council], setup.inbox / "extract.csv")
    process = subprocess.Popen(
        [str(REPO / ".venv/bin/fedbroker"), "connector", "run", "--config", str(setup.config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        until(lambda: _rows_done(str(setup.outbox)) > 0 or process.poll() is not None,
              "no step of the file was committed", seconds=300)  # fmt: skip
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err[-3000:]
    assert (setup.inbox / "extract.csv").exists(), "the pass ran to the file's end"
    assert not (setup.inbox / "done" / "extract.csv").exists()
    stopped_at = _rows_done(str(setup.outbox))
    assert 0 < stopped_at < rows

    run_connector(setup, "--once", timeout=600)
    assert (setup.inbox / "done" / "extract.csv").exists()
    outbox = Outbox(setup.outbox)
    quarantined = len(outbox.quarantined())
    assert outbox.depth() == 0
    outbox.close()
    codec = Codec()
    ids = [
        body_of(codec, v, CitizenEvent).event_id
        for _, v in read_topic(kafka_bootstrap, setup.events_topic)
    ]
    assert len(set(ids)) == rows - quarantined, "a row was lost"
    assert len(ids) == len(set(ids)), "a record was sent twice"
