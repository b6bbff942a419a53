"""Operators' side: the alert rules pass Prometheus's own checks and unit tests, and a
real Prometheus server (Debian's package, installed by ``deploy/tools/ensure.sh``)
scrapes the broker's metrics endpoint and evaluates the rules on what it scraped."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from broker._metrics import BrokerMetrics
from tests.ports import SERVERS

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
METRICS_PORT, PROMETHEUS_PORT = SERVERS["prometheus-test"]


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: run deploy/tools/ensure.sh (make services does)"
    return path


def test_rules_are_valid_and_their_unit_tests_pass():
    for args in (["check", "rules", "rules.yml"], ["test", "rules", "rules_test.yml"],
                 ["check", "config", "prometheus.yml"]):  # fmt: skip
        result = subprocess.run([_tool("promtool"), *args], cwd=RULES, capture_output=True,
                                text=True, check=False)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr


def _query(expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/query?" + urllib.parse.urlencode(
        {"query": expr}
    )
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _alerts() -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/alerts"
    with urllib.request.urlopen(url, timeout=5) as response:
        return list(json.load(response)["data"]["alerts"])


@pytest.mark.slow
def test_prometheus_scrapes_the_broker_and_fires_on_a_forgery(tmp_path):
    metrics = BrokerMetrics()
    metrics.serve(METRICS_PORT)
    metrics.events.labels("E08000001", "address-change").inc(3)
    forged = metrics.rejected.labels("bad-signature")  # at 0 until the forgery
    shutil.copy(RULES / "rules.yml", tmp_path / "rules.yml")
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "rule_files: [rules.yml]\n"
        "scrape_configs:\n"
        "  - job_name: fedbroker-broker\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{METRICS_PORT}']}}]\n"
    )
    server = subprocess.Popen(
        [_tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"],
        stdout=(tmp_path / "prometheus.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                up = _query('up{job="fedbroker-broker"}')
                if up and up[0]["value"][1] == "1":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()[-2000:]
            time.sleep(1)
        events = _query("fedbroker_broker_events_total")
        assert events[0]["metric"]["source"] == "E08000001" and events[0]["value"][1] == "3"

        # increase() needs a sample at zero before the forgery: the scrape that
        # reported the target up took one (the series exists at zero from the start).
        at_zero = _query('fedbroker_broker_rejected_total{reason="bad-signature"}')
        assert at_zero and at_zero[0]["value"][1] == "0"
        forged.inc()
        deadline = time.monotonic() + 60
        while not any(a["labels"]["alertname"] == "FedbrokerForgedMessages" for a in _alerts()):
            assert time.monotonic() < deadline, "the forgery alert never fired"
            time.sleep(1)
    finally:
        server.terminate()
        server.wait(timeout=30)
