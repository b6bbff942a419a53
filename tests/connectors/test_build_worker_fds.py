"""A build worker holds none of its connector's sockets or SQLite files.

Workers are forked, and a fork inherits every open descriptor: the producer's
connections to Kafka, the metrics listener, the outbox's database, WAL and
shared-memory files. A worker holding a Kafka socket kept the connection (and
the broker's view of it) open after the connector closed it; one holding the
outbox may touch a SQLite database across a fork, which SQLite forbids; and
a worker that outlives a restart would hold the old outbox open. The worker
swaps each inherited socket and regular file (past stdin, stdout and stderr)
for /dev/null when it starts.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connectors import load_config, open_connector
from tests.connectors.conftest import COUNCILS
from tests.connectors.processes import children

pytestmark = pytest.mark.kafka


def _descriptors(pid: int) -> dict[int, str]:
    found = {}
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            found[int(entry.name)] = os.readlink(entry)
        except FileNotFoundError:  # closed while listed
            continue
    return found


def test_a_build_worker_holds_no_kafka_socket_or_outbox_file(council_factory):
    setup = council_factory(COUNCILS[0])
    (setup.inbox / "a.csv").write_bytes(setup.synth.files[COUNCILS[0]].read_bytes())
    connector = open_connector(load_config(setup.config))
    connector.run(once=True)  # the producer connects: its sockets are open from now on
    (setup.inbox / "b.csv").write_bytes(setup.synth.files[COUNCILS[1]].read_bytes())
    seen: list[dict[int, str]] = []
    mine: list[dict[int, str]] = []

    def look() -> None:
        if not seen:  # the workers are alive while the pass lasts
            mine.append(_descriptors(os.getpid()))
            seen.extend(_descriptors(pid) for pid in children())

    try:
        connector.ingest(after_step=look)
        outbox = str(setup.outbox)
    finally:
        connector.close()
    assert seen, "no build worker was alive during the pass"
    sockets = {target for target in mine[0].values() if target.startswith("socket:")}
    assert sockets, "the connector held no socket: nothing to check"
    for worker in seen:
        inherited = {fd: t for fd, t in worker.items() if t in sockets or t.startswith(outbox)}
        assert not inherited, f"a build worker holds its connector's {inherited}"
