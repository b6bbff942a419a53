"""The fedbroker Grafana dashboard, generated with grafana-foundation-sdk.

Run ``python deploy/grafana/dashboard.py`` to rewrite ``fedbroker.json`` beside
it; ``tests/deploy/test_dashboard.py`` fails while the committed JSON differs
from what this script builds, and runs every query below against a real
Prometheus scraping a broker worker and a connector. Every metric named here is
one the code registers (``broker/_metrics.py``, ``connectors/_metrics.py``); a
test checks that too, so a renamed metric cannot leave a silently empty panel.

The audit row shows how long each chain's newest records have waited for a
signed checkpoint (the alert ``FedbrokerAuditCheckpointStale`` reads the same
metric), the rate of audit records and the directory's time to expiry, after
which the broker writes no more.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

__all__ = ["OUTPUT", "PANELS", "UID", "PanelSpec", "Query", "build", "render"]

UID = "fedbroker-overview"
OUTPUT = Path(__file__).with_name("fedbroker.json")
#: Grafana's own rate window; the Prometheus test substitutes a fixed one.
RATE = "$__rate_interval"
_DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")


@dataclass(frozen=True, slots=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True, slots=True)
class PanelSpec:
    """One panel: what it answers (the description an operator reads) and its queries."""

    row: str
    title: str
    unit: str
    description: str
    queries: tuple[Query, ...]


def _p(quantile: float, metric: str) -> str:
    return f"histogram_quantile({quantile}, sum by (le) (rate({metric}_bucket[{RATE}])))"


PANELS: tuple[PanelSpec, ...] = (
    PanelSpec(
        "Flow", "Throughput", "ops",
        "Events acknowledged by Kafka at the connectors, accepted by the broker, and"
        " notifications sent, per second.",
        (
            Query(f"sum by (topic) (rate(fedbroker_connector_events_published_total[{RATE}]))",
                  "published {{topic}}"),
            Query(f"sum by (source) (rate(fedbroker_broker_events_total[{RATE}]))",
                  "accepted from {{source}}"),
            Query(f"sum by (agreement) (rate(fedbroker_broker_notifications_total[{RATE}]))",
                  "notified {{agreement}}"),
        ),
    ),
    PanelSpec(
        "Flow", "End-to-end latency", "s",
        "From the connector's publish time to the broker's notification (p50, p99), and"
        " from the connector's outbox commit to Kafka's acknowledgement (p99).",
        (
            Query(_p(0.5, "fedbroker_broker_published_to_notified_seconds"), "notified p50"),
            Query(_p(0.99, "fedbroker_broker_published_to_notified_seconds"), "notified p99"),
            Query(_p(0.99, "fedbroker_connector_publish_latency_seconds"), "acknowledged p99"),
        ),
    ),
    PanelSpec(
        "Flow", "Consumer lag", "short",
        "Messages behind each input topic's high-water mark, as the workers last saw it."
        " Growing for minutes: add workers (up to the partition count) or find a stuck one.",
        (Query("sum by (topic) (fedbroker_broker_consumer_lag)", "{{topic}}"),),
    ),
    PanelSpec(
        "Flow", "Connector outbox depth", "short",
        "Records committed locally and not yet acknowledged by Kafka, per connector. It"
        " should drain to zero; growth means Kafka is unreachable or refusing the writes.",
        (Query("max by (instance) (fedbroker_connector_outbox_depth)", "{{instance}}"),),
    ),
    PanelSpec(
        "Decisions", "Decisions by outcome", "ops",
        "Every candidate disclosure decided, per second, by outcome (deny by default).",
        (
            Query(f"sum by (outcome) (rate(fedbroker_broker_decisions_total[{RATE}]))",
                  "{{outcome}}"),
        ),
    ),
    PanelSpec(
        "Decisions", "Rejections by reason", "ops",
        "Messages the broker refused (and quarantined on the rejected topic) and rows the"
        " connectors quarantined, per second, by reason code.",
        (
            Query(f"sum by (reason) (rate(fedbroker_broker_rejected_total[{RATE}]))",
                  "broker {{reason}}"),
            Query(
                f"sum by (reason) (rate(fedbroker_connector_rows_quarantined_total[{RATE}]))",
                "connector {{reason}}",
            ),
        ),
    ),
    PanelSpec(
        "Audit", "Audit checkpoint age", "s",
        "Per chain, how long its newest records have waited for a signed checkpoint (0:"
        " all signed). It should stay under the checkpoint interval (a minute by default);"
        " a line climbing for minutes means the chain's tick or the audit topic is stuck.",
        (Query("max by (chain) (fedbroker_broker_audit_checkpoint_age_seconds)", "{{chain}}"),),
    ),
    PanelSpec(
        "Audit", "Audit records written", "ops",
        "One audit record per decision, per second; a flat line while events arrive means"
        " the chain is not growing.",
        (Query(f"sum(rate(fedbroker_broker_decisions_total[{RATE}]))", "audit records"),),
    ),
    PanelSpec(
        "Audit", "Directory expires in", "s",
        "Time until the signed directory in use expires; at zero the workers stop deciding"
        " and the audit chain stops growing.",
        (
            Query("min(fedbroker_broker_directory_expires_in_seconds)", "expires in"),
            Query("min(fedbroker_broker_deciding)", "deciding (1) / stopped (0)"),
        ),
    ),
)  # fmt: skip


def build() -> Dashboard:
    """The dashboard builder: one row per ``PanelSpec.row``, panels in ``PANELS`` order."""
    dashboard = (
        Dashboard("fedbroker")
        .uid(UID)
        .tags(["fedbroker", "generated"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("utc")
        .with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    row = None
    for spec in PANELS:
        if spec.row != row:
            row = spec.row
            dashboard = dashboard.with_row(Row(row))
        panel = (
            Timeseries()
            .title(spec.title)
            .description(spec.description)
            .unit(spec.unit)
            .datasource(_DATASOURCE)
            .height(8)
            .span(12)
        )
        for ref, query in zip("ABCDEFGH", spec.queries, strict=False):
            panel = panel.with_target(
                Dataquery().expr(query.expr).legend_format(query.legend).ref_id(ref)
            )
        dashboard = dashboard.with_panel(panel)
    return dashboard


def render() -> str:
    """The dashboard as the stable JSON committed in ``fedbroker.json``."""
    return JSONEncoder(sort_keys=True, indent=2).encode(build().build()) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {OUTPUT}\n")
