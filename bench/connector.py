"""Connector throughput: rows/s from a CSV file to Kafka-acknowledged events.

Baseline in the same run: a bare kafka-python producer (acks=all, idempotent)
sending pre-encoded messages of the same sizes to the same broker, right after
each connector run. The ratio is what normalising, tokenising, sealing,
signing, encoding and the durable outbox cost on top of Kafka itself. The
connector builds records in worker processes (one per core), so its CPU figure
adds theirs to its own. Run: ``python -m bench.connector [--rows N] [--repeat K]``.

Against a secured cluster, set ``KAFKA_BOOTSTRAP_SERVERS`` and the party's
``FEDBROKER_KAFKA_SECURITY_FILE``: the connector and the baseline both use it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import yaml
from kafka import KafkaProducer

from bench._security import client_config
from connectors import (
    generate_federation,
    generate_linkage_key,
    load_config,
    open_connector,
)
from consent import build_dev_federation
from fedbroker import KafkaCluster

COUNCIL = "E08000001"


def _bootstrap(home: Path) -> tuple[str, KafkaCluster | None]:
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        return existing, None
    cluster = KafkaCluster(1, 29492, home)
    return cluster.up(fresh=True), cluster


def _setup(work: Path, bootstrap: str, people: int) -> tuple[Path, Path, int]:
    federation = build_dev_federation(work / "federation", councils=[COUNCIL, "E08000002"])
    synth = generate_federation(work / "synth", councils=[COUNCIL], people=people, error_rate=0.0)
    keys = work / "linkage.json"
    keys.write_text(json.dumps({"1": generate_linkage_key(1).secret.hex()}))
    keys.chmod(0o600)
    signing = federation.keys[COUNCIL].signing
    assert signing is not None
    config = {
        "council": COUNCIL, "directory": str(federation.directory_path),
        "trust_anchor": str(federation.trust_anchor), "signing_key": str(signing.private),
        "linkage_keys": str(keys), "poll_interval_s": 0.05,
        "sources": [{"name": "revenues", "kind": "csv", "mapping": str(synth.mapping)}],
    }  # fmt: skip
    (work / "config.json").write_text(json.dumps(config))
    return synth.files[COUNCIL], work / "config.json", synth.rows


def _connector_config(work: Path, run: int, template: Path, extract: Path, bootstrap: str) -> Path:
    """A fresh outbox, inbox and topic prefix for one run, the same file in its inbox."""
    home = work / f"run-{run}"
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    shutil.copy(extract, inbox / "extract.csv")
    document = json.loads(template.read_text())
    document["outbox"] = str(home / "outbox.sqlite")
    document["kafka"] = {"bootstrap": bootstrap, "topic_prefix": f"bench-{uuid.uuid4().hex[:8]}"}
    document["sources"][0]["path"] = str(inbox)
    config = home / "connector.yaml"
    config.write_text(yaml.safe_dump(document))
    return config


def _one_pair(
    work: Path, run: int, template: Path, extract: Path, bootstrap: str
) -> dict[str, float]:
    """The connector over the file, then the bare producer over the same message sizes."""
    config = _connector_config(work, run, template, extract, bootstrap)
    connector = open_connector(load_config(config))
    start, cpu, workers_cpu = time.perf_counter(), time.process_time(), _children_cpu_s()
    published = connector.run(once=True)
    connector_s = time.perf_counter() - start
    connector_cpu_s = time.process_time() - cpu
    # The build workers have ended (each reading pass joins its own) and been reaped.
    build_cpu_s = _children_cpu_s() - workers_cpu
    connector.close()
    sizes = _sizes(bootstrap, load_config(config).topic("events"))
    cpu = time.process_time()
    baseline_s = _bare_producer(bootstrap, sizes)
    baseline_cpu_s = time.process_time() - cpu
    connector_rate, bare_rate = published / connector_s, len(sizes) / baseline_s
    return {
        "published": published,
        "connector_rows_per_s": connector_rate,
        "bare_producer_msgs_per_s": bare_rate,
        "ratio": connector_rate / bare_rate,
        "mean_message_bytes": sum(sizes) / len(sizes),
        # CPU per message (the producer's I/O thread included, Kafka's own
        # excluded): what each side costs, whatever the load. The connector's
        # is its own process (reading, outbox, sending) plus its build workers.
        "connector_cpu_us_per_row": (connector_cpu_s + build_cpu_s) / max(published, 1) * 1e6,
        "connector_main_cpu_us_per_row": connector_cpu_s / max(published, 1) * 1e6,
        "connector_build_cpu_us_per_row": build_cpu_s / max(published, 1) * 1e6,
        "bare_producer_cpu_us_per_msg": baseline_cpu_s / max(len(sizes), 1) * 1e6,
    }


def run(rows: int, repeat: int) -> dict[str, object]:
    """``repeat`` pairs of runs, each pair back to back; the median pair is the figure.

    On a machine shared with other work, load moves between one run and the
    next: pairing each connector run with a bare run right after it, and taking
    the median of the pairs' ratios, keeps one unlucky run from being the result.
    """
    home = Path(".fedbroker").resolve()
    bootstrap, cluster = _bootstrap(home)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            extract, template, total = _setup(work, bootstrap, rows // 2)
            pairs = [_one_pair(work, n, template, extract, bootstrap) for n in range(repeat)]
    finally:
        if cluster is not None:
            cluster.down()
    median = sorted(pairs, key=lambda pair: pair["ratio"])[len(pairs) // 2]
    return {
        "rows": total,
        **median,
        "ratio": round(median["ratio"], 3),
        "ratios": [round(pair["ratio"], 3) for pair in pairs],
    }


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _sizes(bootstrap: str, topic: str) -> list[int]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000, **client_config())  # fmt: skip
    try:
        return [len(m.value) for m in consumer]
    finally:
        consumer.close()


def _bare_producer(bootstrap: str, sizes: list[int]) -> float:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                             linger_ms=5, batch_size=256 * 1024, **client_config())  # fmt: skip
    topic = f"bench-bare-{uuid.uuid4().hex[:8]}"
    payloads = [os.urandom(size) for size in sizes]
    producer.send(topic, b"warm-up").get(timeout=30)
    start = time.perf_counter()
    futures = [producer.send(topic, key=b"k" * 72, value=p) for p in payloads]
    producer.flush()
    for future in futures:
        future.get(timeout=30)
    elapsed = time.perf_counter() - start
    producer.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3, help="pairs of runs (median reported)")
    arguments = parser.parse_args()
    figures = run(arguments.rows, arguments.repeat)
    figures["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"rows in file: {figures['rows']}, events acknowledged: {figures['published']:.0f}")
    print(f"ratio connector / bare in each pair of runs: {figures['ratios']}; the median pair:")
    print(f"connector file->acked Kafka: {figures['connector_rows_per_s']:,.0f} rows/s")
    print(f"bare kafka-python producer:  {figures['bare_producer_msgs_per_s']:,.0f} msgs/s "
          f"(same {figures['mean_message_bytes']:.0f}-byte mean size)")  # fmt: skip
    print(f"CPU: connector {figures['connector_cpu_us_per_row']:.0f} us/row "
          f"({figures['connector_main_cpu_us_per_row']:.0f} reading, outbox and sending, "
          f"{figures['connector_build_cpu_us_per_row']:.0f} in build workers), "
          f"bare producer {figures['bare_producer_cpu_us_per_msg']:.0f} us/msg")  # fmt: skip
    print(f"ratio connector / bare: {figures['ratio']:.3f} (aim >= 0.5); load average "
          f"{figures['load_average_1m']}")  # fmt: skip
    print("BENCH " + json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
