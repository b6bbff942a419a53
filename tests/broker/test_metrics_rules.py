"""Every broker metric an alert rule names is one the broker exports (no silent renames)."""

from __future__ import annotations

import re

from broker._metrics import BrokerMetrics
from tests.connectors.conftest import REPO


def _exported() -> set[str]:
    names = set()
    for family in BrokerMetrics().registry.collect():
        names.add(family.name)
        names.update({f"{family.name}_total", f"{family.name}_bucket", f"{family.name}_count"})
    return names


def test_the_rules_name_only_exported_broker_metrics():
    rules = (REPO / "deploy/prometheus/rules.yml").read_text()
    named = set(re.findall(r"fedbroker_broker_[a-z_]+", rules))
    assert "fedbroker_broker_directory_expires_in_seconds" in named
    assert named <= _exported(), named - _exported()
