"""The Grafana dashboard: the committed JSON is what the script builds, every metric it
reads is one the code registers, and every panel's query returns data from a real
Prometheus scraping a running broker worker and a running connector."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaProducer

from tests.broker.workers import start_worker
from tests.connectors.conftest import COUNCILS, REPO, read_topic
from tests.deploy.metric_names import exported, used_in
from tests.ports import SERVERS

# Below the ephemeral range, apart from the other tests' ports.
BROKER_PORT, ORIGIN_PORT, DESTINATION_PORT, PROMETHEUS_PORT = SERVERS["dashboard"]
FROM, TO = COUNCILS[0], COUNCILS[1]
DAY0 = date.today() - timedelta(days=20)  # inside the cross-boundary agreement's retention
PERSON = {"forename": "Alice", "surname": "Example-Jones", "dob": "14/02/1984",
          "postcode": "M1 1AE", "address_1": "1 Piccadilly", "uprn": "10023456789",
          "nhs_no": "9434765919", "ni_number": "JG103759A"}  # fmt: skip


def _queries(dashboard: Any) -> list[tuple[str, str]]:
    return [(spec.title, q.expr) for spec in dashboard.PANELS for q in spec.queries]


def test_committed_dashboard_is_what_the_script_generates(dashboard):
    committed = dashboard.OUTPUT.read_text(encoding="utf-8")
    assert committed == dashboard.render(), "run: python deploy/grafana/dashboard.py"
    document = json.loads(committed)
    targets = [t["expr"] for p in document["panels"] for t in p.get("targets", [])]
    assert targets == [expr for _, expr in _queries(dashboard)]


def test_the_dashboard_covers_what_operators_asked_for(dashboard):
    titles = {spec.title for spec in dashboard.PANELS}
    assert {"Throughput", "End-to-end latency", "Consumer lag", "Decisions by outcome",
            "Rejections by reason", "Connector outbox depth"} <= titles  # fmt: skip
    assert any("audit" in t.lower() for t in titles)


def test_every_metric_the_dashboard_reads_is_registered_by_the_code(dashboard):
    known = set().union(*exported().values())
    for title, expr in _queries(dashboard):
        names = used_in(expr)
        assert names, f"{title}: {expr} reads no fedbroker metric"
        assert names <= known, f"{title}: {sorted(names - known)} are exported by no component"


def test_every_metric_the_alert_rules_read_is_registered_by_the_code():
    rules = yaml.safe_load((REPO / "deploy/prometheus/rules.yml").read_text())
    known = set().union(*exported().values())
    for group in rules["groups"]:
        for rule in group["rules"]:
            unknown = used_in(rule["expr"]) - known
            assert not unknown, f"{rule.get('alert') or rule.get('record')} reads {unknown}"


def test_the_name_check_catches_a_renamed_metric(dashboard):
    known = set().union(*exported().values())
    assert used_in("sum(rate(fedbroker_broker_decision_total[5m]))") - known


# -- the real Prometheus -------------------------------------------------------------------


def _query(expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/query?" + urllib.parse.urlencode(
        {"query": expr}
    )
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a local URL
        body = json.load(response)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _has_data(expr: str) -> bool:
    """At least one series with a number (a quantile of nothing observed is NaN)."""
    try:
        return any(not math.isnan(float(r["value"][1])) for r in _query(expr))
    except OSError:
        return False


def _targets_up() -> int:
    try:
        return sum(r["value"][1] == "1" for r in _query("up"))
    except OSError:
        return 0


def _write(inbox: Path, rows: list[dict[str, str]]) -> None:
    path = inbox / ".extract.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(path, inbox / "extract.csv")


def _with_metrics(setup: Any, port: int) -> None:
    document = yaml.safe_load(setup.config.read_text())
    document |= {"metrics_port": port, "metrics_bind": "127.0.0.1"}
    setup.config.write_text(yaml.safe_dump(document))


def _wait(condition: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(1)


def _prometheus(tmp_path: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: run deploy/tools/ensure.sh (make services does)"
    targets = {"fedbroker-broker": [BROKER_PORT],
               "fedbroker-connector": [ORIGIN_PORT, DESTINATION_PORT]}  # fmt: skip
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": job,
             "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports]}]}
            for job, ports in targets.items()
        ],
    }  # fmt: skip
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    return subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
         f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"],
        stdout=(tmp_path / "prometheus.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def _connector(setup: Any, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(REPO / ".venv/bin/fedbroker"), "connector", "run", "--config", str(setup.config)],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.mark.kafka
@pytest.mark.slow
def test_every_panel_query_returns_data_from_a_running_broker_and_connector(
    dashboard, council_factory, kafka_bootstrap, federation, topic_factory, tmp_path
):
    prefix = topic_factory("fed")
    origin, destination = (council_factory(c, prefix=prefix) for c in (FROM, TO))
    _with_metrics(origin, ORIGIN_PORT)
    _with_metrics(destination, DESTINATION_PORT)
    processes = [_prometheus(tmp_path)]
    try:
        processes.append(start_worker(
            kafka_bootstrap, federation, group=topic_factory("broker"), prefix=prefix,
            data_dir=tmp_path / "broker", log=tmp_path / "worker.log",
            options=["--metrics-port", str(BROKER_PORT), "--metrics-bind", "127.0.0.1"],
        ))  # fmt: skip
        processes.append(_connector(origin, tmp_path / "origin.log"))
        processes.append(_connector(destination, tmp_path / "destination.log"))
        _wait(lambda: _targets_up() == 3, "Prometheus never saw all three targets up: "
              + (tmp_path / "prometheus.log").read_text()[-1500:])  # fmt: skip

        # A resident moves between the councils (one match, notified and audited), a row
        # from the future is quarantined by the connector, a truncated message is
        # refused by the broker: every panel then has something to show.
        _write(origin.inbox, [
            {**PERSON, "ref": "A-1", "event": "CT_CLOSE", "event_date": DAY0.isoformat()},
            {**PERSON, "ref": "A-2", "event": "CT_CLOSE", "event_date": "2062-09-01"},
        ])  # fmt: skip
        _wait(lambda: len(read_topic(kafka_bootstrap, origin.events_topic)) == 1,
              "the origin connector published nothing")  # fmt: skip
        moved = (DAY0 + timedelta(days=3)).isoformat()
        _write(destination.inbox, [{**PERSON, "ref": "B-7", "event": "MOVE",
                                    "event_date": moved, "postcode": "M32 0AA",
                                    "address_1": "2 Chester Rd"}])  # fmt: skip
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        producer.send(origin.events_topic, key=b"junk", value=b"\xc3\x01truncated")
        producer.flush()
        producer.close()

        window = "1m"
        queries = [(t, e.replace(dashboard.RATE, window)) for t, e in _queries(dashboard)]
        deadline = time.monotonic() + 150
        missing = queries
        while missing and time.monotonic() < deadline:
            missing = [(t, e) for t, e in missing if not _has_data(e)]
            time.sleep(1)
        logs = {n: (tmp_path / n).read_text()[-800:] for n in ("worker.log", "origin.log")}
        assert not missing, (missing, logs)

        # The operator's view carries no personal data: no clear value in any scrape.
        for port in (BROKER_PORT, ORIGIN_PORT, DESTINATION_PORT):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as page:  # noqa: S310
                text = page.read().decode()
            assert not any(
                v in text
                for v in (
                    "Alice",
                    "Example-Jones",
                    "9434765919",
                    "JG103759A",
                    "10023456789",
                    "A-1",
                    "B-7",
                )
            )
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
