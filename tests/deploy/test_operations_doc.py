"""docs/operations.md keeps up with the rules and the dashboard: every alert has its row
(what it means, what to do), every panel is listed, and every metric the page names is
one the code exports."""

from __future__ import annotations

import re

import yaml

from tests.deploy.conftest import DEPLOY, REPO
from tests.deploy.metric_names import exported, families

PAGE = REPO / "docs" / "operations.md"


def _alerts() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    return [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]


def test_every_alert_has_a_row_saying_what_to_do():
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", PAGE.read_text(),
                                                        re.MULTILINE)}  # fmt: skip
    for alert in _alerts():
        assert alert in rows, f"{alert} is not in docs/operations.md"
        assert rows[alert].count("|") == 5, f"{alert}: severity, meaning and action, please"


def test_every_dashboard_panel_is_described(dashboard):
    text = PAGE.read_text()
    for spec in dashboard.PANELS:
        assert f"| {spec.title} |" in text, spec.title


def test_every_metric_the_page_names_is_exported():
    known = set().union(*exported().values()) | families()
    named = set(re.findall(r"`(fedbroker_[a-z_]+)`", PAGE.read_text()))
    assert named and named <= known, sorted(named - known)
