"""The demo's closing summary: every claim it makes is checked, and the exit code says so.

Exit 1 when a component died, when the broker did not process every published
event, when a notification on a watched topic was not handed over exactly
once, when consent was overridden, when the audit chain does not verify, or
when a clear value turns up in any topic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from consent import notify_topic, verify_audit
from fedbroker._demo._checks import behind, scan
from fedbroker._demo._observe import Observer
from fedbroker._demo._setup import DemoSetup
from fedbroker._demo._truth import compare, expected_disclosures
from fedbroker._topics import read_to_end
from schemas import AuditKind, AuditRecord, Codec, FedbrokerError, MatchNotification
from subscriber import open_notification, read_notification

__all__ = ["Outcome", "report"]


@dataclass(slots=True)
class Outcome:
    """How the run ended, before any check (mutable: filled in as the run goes)."""

    settled: bool = False
    died: str = ""
    interrupted: str = ""
    undrained: list[str] = field(default_factory=list)


def _on_topics(
    setup: DemoSetup, bootstrap: str, client: Mapping[str, Any]
) -> dict[str, list[MatchNotification]]:
    directory, codec = setup.federation.load(), Codec()
    return {
        service: [
            read_notification(r.value, directory=directory, codec=codec)
            for r in read_to_end(
                bootstrap, notify_topic(setup.prefix, service), consumer_config=client
            )
            if r.value is not None
        ]
        for service in setup.watched
    }


def _samples(setup: DemoSetup, found: Mapping[str, list[MatchNotification]]) -> list[str]:
    """One notification per agreement opened as its service would: field names only."""
    directory, lines, shown = setup.federation.load(), [], set()
    for service, notifications in found.items():
        for notification in notifications:
            if notification.agreement_id in shown:
                continue
            shown.add(notification.agreement_id)
            try:
                opened = open_notification(
                    notification, service=service, key=setup.federation.sealing_key(service),
                    directory=directory,
                ).fields  # fmt: skip
            except FedbrokerError as exc:
                lines.append(
                    f"  {service} would refuse {notification.notification_id}: {exc.reason}"
                )
                continue
            kinds = [e.event_type.value for e in notification.events]
            names = sorted({f for fields in opened.values() for f in fields})
            lines.append(f"  {service} opened {notification.agreement_id} {kinds}: fields {names}")
    return lines


def report(
    setup: DemoSetup,
    observer: Observer,
    outcome: Outcome,
    *,
    ports: Mapping[str, int],
    bootstrap: str,
    local_kafka: bool,
    echo: Callable[[str], None],
    client: Mapping[str, Any] | None = None,
) -> int:
    client = client or {}
    failures: list[str] = []
    if outcome.died:
        failures.append(f"a component died: {outcome.died}")
    if outcome.undrained and not outcome.died:
        failures.append(f"rows left in the outboxes of {', '.join(outcome.undrained)}")
    lag = behind(bootstrap, f"{setup.prefix}-broker", setup.prefix, client)
    if lag or not outcome.settled:
        failures.append(f"not every published event was processed ({lag} behind)")
    echo("\nsummary")
    codec = Codec()
    audit = [
        codec.decode_as(r.value, AuditRecord)
        for r in read_to_end(bootstrap, f"{setup.prefix}.audit", consumer_config=client)
        if r.value is not None
    ]
    decisions = [a for a in audit if a.kind is AuditKind.DECISION]
    for (agreement, outcome_, reasons), count in sorted(Counter(
        (a.agreement_id, a.outcome.value if a.outcome else "", ",".join(a.reasons))
        for a in decisions
    ).items()):  # fmt: skip
        echo(f"  decided {agreement} {outcome_} [{reasons}]: {count}")
    broker_key = setup.federation.load().member("broker").signing_key
    assert broker_key is not None  # the directory parser requires the broker's key
    verified = verify_audit(audit, broker_key)
    echo(f"  audit chain: {len(audit)} records, {'verified' if verified.ok else 'PROBLEMS'}")
    if not verified.ok or not decisions:
        failures.append("the audit chain did not verify" if not verified.ok else "no decisions")
    found = _on_topics(setup, bootstrap, client)
    truth = {(r.council, r.source_ref): r.person_id for r in setup.truth}
    expected = {
        (a, s, p)
        for a, s, p in expected_disclosures(setup.truth, setup.federation.load(), setup.watched)
        if (a, p) not in setup.forbidden
    }
    checked = compare(
        expected, observer.deliveries, truth=truth,
        published={s: {n.notification_id for n in ns} for s, ns in found.items()},
        forbidden=setup.forbidden,
    )  # fmt: skip
    echo(f"  ground truth: {checked.expected} disclosures expected for the watched services; "
         f"{checked.found} found ({checked.recall:.0%}), {checked.missed} missed by linkage, "
         f"{checked.wrongly_joined} wrongly joined")  # fmt: skip
    echo(f"  consent: {len(setup.forbidden)} residents objected to "
         f"{', '.join(sorted({a for a, _ in setup.forbidden})) or 'nothing'} "
         "before their events arrived")  # fmt: skip
    echo(f"  delivery: {sum(len(v) for v in found.values())} notifications on the watched "
         f"topics, {checked.undelivered} not handed over, {checked.duplicates} handed over "
         f"twice; {checked.forbidden} that consent forbids")  # fmt: skip
    if not checked.ok:
        failures.append("delivery does not match the topics (missing, doubled or forbidden)")
    for line in _samples(setup, found):
        echo(line)
    leaks, topics = scan(bootstrap, setup.prefix, setup.synth.files.values(), client)
    echo(f"  privacy scan of {topics} topics {setup.prefix}*: {leaks} clear values found")
    if leaks:
        failures.append(f"{leaks} clear values found in topics")
    echo("  metrics were served while it ran at " + ", ".join(
        f"{name} http://127.0.0.1:{port}/metrics" for name, port in ports.items()
    ))  # fmt: skip
    echo(f"  logs, hand-overs and dead letters: {setup.work}")
    if local_kafka:
        echo("  Kafka is still running for the next run; stop it with: fedbroker kafka down")
    else:
        echo(f"  Kafka at {bootstrap} is yours and was left as it was")
    for failure in failures:
        echo(f"FAILED: {failure}")
    echo("demo FAILED" if failures else "demo OK: every check held")
    return 1 if failures else 0
