"""The streaming broker and ``fedbroker link`` find the same pairs (DESIGN section 5).

Two councils' synthetic extracts, with realistic errors, go once through the
connectors, Kafka and a broker worker, and once through ``link_files`` with the
same linkage key and threshold. The cross-council pairs on the broker's
``<prefix>.broker.matches`` topic, mapped back to the councils' own references,
must equal the pairs ``link`` writes.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from broker import DEFAULT_DICE_THRESHOLD
from connectors import generate_federation, load_linkage_keys
from connectors._tokens import opaque_reference
from fedbroker.link import link_files
from tests.broker.workers import settled, start_worker, stop_worker
from tests.connectors.conftest import COUNCILS, read_topic, run_connector
from tests.ports import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

LEFT, RIGHT = COUNCILS[0], COUNCILS[1]
THRESHOLD = "0.8"
# The broker keeps only events some agreement uses; benefit claims serve none,
# so the stream would meet them only when they arrive second. ``link`` keeps all.
UNUSED_CODES = {"CTR"}


def _kept_rows(source: Path, target: Path) -> int:
    with source.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = [r for r in reader if r["event"] not in UNUSED_CODES]
        fields = list(reader.fieldnames or [])
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def test_stream_and_link_find_the_same_pairs(
    council_factory, kafka_bootstrap, federation, linkage_keys, topic_factory, tmp_path
):
    synth = generate_federation(tmp_path / "synth", councils=[LEFT, RIGHT], people=150, seed=23)
    extracts = {c: tmp_path / f"{c}.csv" for c in (LEFT, RIGHT)}
    for council, path in extracts.items():
        assert _kept_rows(synth.files[council], path) > 50

    prefix = topic_factory("fed")
    setups = {c: council_factory(c, prefix=prefix) for c in (LEFT, RIGHT)}
    group = topic_factory("broker")
    worker = start_worker(
        kafka_bootstrap,
        federation,
        group=group,
        prefix=prefix,
        data_dir=tmp_path / "broker",
        log=tmp_path / "worker.log",
        options=["--threshold", THRESHOLD],
    )
    try:
        for council, setup in setups.items():
            shutil.copy(extracts[council], setup.inbox / "extract.csv")
            run_connector(setup, "--once")
        settled(kafka_bootstrap, group, prefix, timeout=240)
    finally:
        stop_worker(worker)

    keys = load_linkage_keys(linkage_keys)
    local = {
        opaque_reference(keys[-1], council, "synthetic", row["ref"]): (council, row["ref"])
        for council in (LEFT, RIGHT)
        for row in csv.DictReader(synth.files[council].open(encoding="utf-8"))
    }
    streamed = set()
    for _, value in read_topic(kafka_bootstrap, f"{prefix}.broker.matches"):
        pair = json.loads(value)
        sides = dict(local[e["source_ref"]] for e in pair["events"])
        if set(sides) == {LEFT, RIGHT}:
            streamed.add((sides[LEFT], sides[RIGHT]))

    linked = link_files(extracts[LEFT], extracts[RIGHT], synth.mapping, linkage_keys=keys,
                        threshold=float(THRESHOLD))  # fmt: skip
    batch = {(p.left_ref, p.right_ref) for p in linked.pairs}
    assert len(batch) > 20, "too few pairs for the comparison to mean anything"
    assert streamed == batch, (
        f"only in the stream: {sorted(streamed - batch)[:5]}; "
        f"only in link: {sorted(batch - streamed)[:5]}; "
        + (tmp_path / "worker.log").read_text()[-2000:]
    )


def test_the_stream_fits_its_threshold_from_every_partitions_scores(
    council_factory, kafka_bootstrap, federation, topic_factory, tmp_path
):
    synth = generate_federation(tmp_path / "synth", councils=COUNCILS, people=300, seed=29)
    prefix, group = topic_factory("fed"), topic_factory("broker")
    ports, workers = [], []
    for n in range(2):
        ports.append(free_port())  # taken once the worker is ready, before the next
        workers.append(
            start_worker(kafka_bootstrap, federation, group=group, prefix=prefix,
                         data_dir=tmp_path / f"broker-{n}", log=tmp_path / f"worker-{n}.log",
                         options=["--refit-interval", "2", "--metrics-port", str(ports[n])])
        )  # fmt: skip
    try:
        for council in COUNCILS:
            setup = council_factory(council, prefix=prefix)
            shutil.copy(synth.files[council], setup.inbox / "extract.csv")
            run_connector(setup, "--once")
        settled(kafka_bootstrap, group, prefix, timeout=240)
        # Each worker refits every 2 s from every partition's histogram as it
        # reads them then: a fit made while the last histograms were on their way
        # is superseded by the next. Fitted on its own partitions alone, each
        # would keep a threshold of its own and never agree.
        deadline = time.monotonic() + 60
        while True:
            thresholds = [_threshold(port) for port in ports]
            fitted = all(t != DEFAULT_DICE_THRESHOLD for t in thresholds)
            if fitted and thresholds[0] == thresholds[1]:
                break
            assert time.monotonic() < deadline, f"no common fit on the whole sample: {thresholds}"
            time.sleep(1)  # polling interval of a condition
    finally:
        for worker in workers:
            stop_worker(worker)
    assert 0.5 < thresholds[0] < 0.95
    logs = [(tmp_path / f"worker-{n}.log").read_text() for n in range(2)]
    assert all("Dice threshold now" in log and "fitted by EM" in log for log in logs)


def _threshold(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("fedbroker_broker_dice_threshold "):
                return float(line.split()[1])
    raise AssertionError("no threshold metric")
