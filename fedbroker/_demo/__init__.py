"""The live demo (``fedbroker demo``): composes connectors, broker and subscribers on Kafka.

It sits in the top layer with the CLI because it composes both sides (DESIGN
section 9); the packages below own every rule it shows.
"""

from __future__ import annotations

from fedbroker._demo._checks import behind, clear_values, count_in_clear, found_in_clear, scan
from fedbroker._demo._run import DEFAULT_SETTLE_TIMEOUT_S, DemoOptions, DemoStopped, run_demo
from fedbroker._demo._truth import Delivery, TruthReport, TruthRow, compare, expected_disclosures

__all__ = [
    "DEFAULT_SETTLE_TIMEOUT_S",
    "Delivery",
    "DemoOptions",
    "DemoStopped",
    "TruthReport",
    "TruthRow",
    "behind",
    "clear_values",
    "compare",
    "count_in_clear",
    "expected_disclosures",
    "found_in_clear",
    "run_demo",
    "scan",
]
