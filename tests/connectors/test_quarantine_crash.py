"""A connector killed after quarantining and before recording it acted quarantines once.

A file refused as a whole is quarantined in one transaction and moved to
``failed/`` after it: a SIGKILL between the two (a node drained, the
out-of-memory killer) left the file in the inbox, and the next start refused
it again and wrote a second entry for the same file, so the operator's report
and the metric counted one refusal twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from connectors import Outbox, load_config, open_connector
from tests.connectors.conftest import COUNCILS, REPO

#: The connector, killed by SIGKILL the moment it moves a handled file out of the
#: inbox: after the quarantine's transaction committed, before the move.
_KILLED_AT_THE_MOVE = """
import os, shutil, signal, sys
from pathlib import Path
from connectors import load_config, open_connector

def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

shutil.move = killed
connector = open_connector(load_config(Path(sys.argv[1])))
connector.ingest()
"""


def test_a_refused_file_is_quarantined_once_across_a_crash(council_factory):
    setup = council_factory(COUNCILS[0])
    (setup.inbox / "extract.csv").write_text("nothing,useful\n1,2\n")
    crashed = subprocess.run(
        [sys.executable, "-c", _KILLED_AT_THE_MOVE, str(setup.config)],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert (setup.inbox / "extract.csv").exists(), "killed before the file was moved"
    outbox = Outbox(setup.outbox)
    assert len(outbox.quarantined()) == 1
    outbox.close()

    connector = open_connector(load_config(setup.config))
    try:
        connector.ingest()
        refused = connector.outbox.quarantined()
        counted = connector.metrics.rows_quarantined.labels(
            "revenues", "file", "source-unreadable"
        )._value.get()
    finally:
        connector.close()
    assert (setup.inbox / "failed" / "extract.csv").exists()
    assert [(q.location, q.row, q.field, q.reason) for q in refused] == [
        ("extract.csv", 0, "file", "source-unreadable")
    ]
    assert counted == 0, "the restart found the refusal recorded already"


def test_the_same_bytes_refused_again_are_one_entry_a_new_file_another(council_factory):
    """The key is the file's digest: a system dropping the same broken bytes again is the
    same refusal; other bytes under the same name are another."""
    setup = council_factory(COUNCILS[0])
    connector = open_connector(load_config(setup.config))
    try:
        for body in ("nothing,useful\n1,2\n", "nothing,useful\n1,2\n", "other,cols\n3,4\n"):
            (setup.inbox / "extract.csv").write_text(body)
            connector.ingest()
        assert len(connector.outbox.quarantined()) == 2
    finally:
        connector.close()
