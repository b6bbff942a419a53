"""The metric names the code registers, and those a PromQL expression uses, so dashboards,
alert rules and manifests can be checked against the code rather than against a list."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

from broker._metrics import BrokerMetrics
from connectors import ConnectorMetrics
from subscriber import SubscriberMetrics

_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
             "gauge": ("",), "summary": ("_count", "_sum", "")}  # fmt: skip
_NAME = re.compile(r"\bfedbroker_[a-z0-9_]+\b")


def _series(registry: CollectorRegistry) -> set[str]:
    names: set[str] = set()
    for family in registry.collect():
        names |= {family.name + suffix for suffix in _SUFFIXES[family.type]}
    return names


def exported() -> dict[str, set[str]]:
    """Every series name each component can export, by component (fresh registries)."""
    return {
        "broker": _series(BrokerMetrics().registry),
        "connector": _series(ConnectorMetrics().registry),
        "subscriber": _series(SubscriberMetrics().registry),
    }


def used_in(expr: str) -> set[str]:
    """The fedbroker series an expression reads (recording-rule names have colons)."""
    return set(_NAME.findall(expr))


def families() -> set[str]:
    """Metric family names as documentation writes them (a histogram without ``_bucket``)."""
    registries = (BrokerMetrics().registry, ConnectorMetrics().registry,
                  SubscriberMetrics().registry)  # fmt: skip
    return {family.name for r in registries for family in r.collect()}
