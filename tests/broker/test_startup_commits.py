"""Workers started while councils publish commit every input (issue 15 item 3).

Three times over, on fresh topics and a fresh group, two workers and three
councils' connectors start at the same moment, so the group forms, rebalances
and creates its internal topics while events arrive: the start-up stall's
window. Every input partition (council topics and the routed topic) must end
committed to its end. Before ``broker._consumer`` about one start in four left
partitions uncommitted for good (``bench/stall.py``).
"""

from __future__ import annotations

import pytest

from tests.broker.workers import (
    drained,
    publish_together,
    split_extract,
    start_worker,
    stop_workers,
)
from tests.connectors.conftest import COUNCILS

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(420)]

STARTS = 3
WORKERS = 2


def test_workers_and_publishers_started_together_commit_every_input(
    council_factory, federation, synthetic, kafka_bootstrap, topic_factory, tmp_path
):
    # A third of each council's extract per start keeps the three starts short.
    parts = {c: split_extract(synthetic.files[c], tmp_path / f"parts-{c}", STARTS)
             for c in COUNCILS}  # fmt: skip
    late = {}
    for start in range(STARTS):
        prefix, group = topic_factory("fed"), topic_factory("broker")
        setups = {c: council_factory(c, prefix=prefix) for c in COUNCILS}
        workers = [
            start_worker(kafka_bootstrap, federation, group=group, prefix=prefix,
                         data_dir=tmp_path / f"data-{start}-{n}",
                         log=tmp_path / f"worker-{start}-{n}.log", options=["--threshold", "0.8"],
                         wait_ready=False)
            for n in range(WORKERS)
        ]  # fmt: skip
        try:
            publishers = publish_together(setups, {c: parts[c][start] for c in COUNCILS})
            assert all(p.wait(timeout=240) == 0 for p in publishers)
            late[start] = drained(kafka_bootstrap, group, prefix, timeout=120)
            assert all(w.poll() is None for w in workers), "a worker died"
        finally:
            stop_workers(workers)
    assert late == dict.fromkeys(range(STARTS), []), late
