"""No clear personal data leaves the connector: not in Kafka, logs or metrics."""

from __future__ import annotations

import csv
import logging
import shutil
from datetime import datetime

import pytest
from prometheus_client import generate_latest

from connectors import ConnectorMetrics, load_config, open_connector
from tests.connectors.conftest import COUNCILS, read_topic

pytestmark = pytest.mark.kafka


def _clear_values(path) -> set[bytes]:
    """Every identifying value of the input, in the spellings a leak could take."""
    values: set[str] = set()
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            for column in ("forename", "surname", "nhs_no", "ni_number", "address_1"):
                if len(row[column]) >= 4:
                    values.add(row[column])
                if len(row[column]) >= 6:  # shorter case variants occur in ordinary words
                    values |= {row[column].lower(), row[column].upper()}
            if row["postcode"]:
                values |= {row["postcode"], row["postcode"].replace(" ", "")}
            dob = datetime.strptime(row["dob"], "%d/%m/%Y").date()
            values |= {row["dob"], dob.isoformat(), dob.strftime("%Y%m%d"), dob.strftime("%d%m%Y")}
    return {v.encode("utf-8") for v in values}


def test_no_clear_value_in_any_topic_log_or_metric(council_factory, kafka_bootstrap, caplog):
    setup = council_factory(COUNCILS[0])
    source = setup.synth.files[setup.council]
    shutil.copy(source, setup.inbox / "extract.csv")
    metrics = ConnectorMetrics()
    caplog.set_level(logging.DEBUG)
    connector = open_connector(load_config(setup.config), metrics=metrics)
    try:
        assert connector.run(once=True) > 0
    finally:
        connector.close()

    needles = _clear_values(source)
    assert len(needles) > 100
    haystacks = {
        f"{setup.events_topic} message": b"".join(
            k + v for k, v in read_topic(kafka_bootstrap, setup.events_topic)
        ),
        "logs": caplog.text.encode("utf-8"),
        "metrics": generate_latest(metrics.registry),
    }
    for where, haystack in haystacks.items():
        assert haystack, f"nothing to scan in {where}"
        leaked = sorted(n for n in needles if n in haystack)
        assert not leaked, f"clear values in {where}: {len(leaked)} found"
