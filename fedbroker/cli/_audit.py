"""``fedbroker audit verify|subject``: check ``fed.audit`` and answer subject-access requests.

This is the composition layer: it reads the real topic (``_audit_topic``) and
hands the records to ``consent``'s pure verification and query functions.
``verify`` keeps anchors by default (``consent.load_anchors``): the last signed
checkpoint of each chain, read at the start of every run and advanced at its
end, so a chain cut back to an earlier checkpoint fails without any flag. Run
it on another machine with its own anchors file and it is a witness the
broker's operator cannot rewrite (docs/security.md).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from consent import (
    DEFAULT_CHECKPOINT_INTERVAL,
    DEFAULT_VOUCH_MARGIN,
    AuditReport,
    ChainSummary,
    load_anchors,
    save_anchors,
    verify_audit,
)
from fedbroker.cli._audit_subject import subject
from fedbroker.cli._audit_topic import (
    AuditMessage,
    common_options,
    decoder,
    describe_problem,
    read_audit_topic,
)
from fedbroker.cli._broker_key import broker_key_options, load_broker_key, load_previous_keys
from fedbroker.cli._state_files import (
    ANCHORS_ENV,
    SERIALS_ENV,
    default_anchors_path,
    default_serials_path,
)

__all__ = ["ANCHORS_ENV", "SERIALS_ENV", "audit", "default_anchors_path", "default_serials_path"]


def _describe(summary: ChainSummary) -> str:
    last = summary.last_checkpoint
    checkpoint = f"last checkpoint at seq {last.seq}" if last else "no checkpoint"
    line = (
        f"  chain {summary.chain}: {summary.verified}/{summary.records} verified, head "
        f"{summary.head_hash.hex()[:16]}, {checkpoint}, {summary.unanchored} unvouched"
    )
    if summary.vouch_deadline is not None:
        line += f" (pending: a checkpoint is due by {summary.vouch_deadline.isoformat()})"
    return line


def _report(report: AuditReport, messages: list[AuditMessage], topic: str) -> None:
    click.echo(f"{topic}: {len(messages)} record(s) in {len(report.chains)} chain(s)")
    for summary in report.chains.values():
        click.echo(_describe(summary))
    for problem in report.problems:
        click.echo(describe_problem(problem, messages), err=True)


@click.group()
def audit() -> None:
    """Verify the audit trail and answer subject-access requests."""


audit.add_command(subject)


@audit.command()
@common_options
@broker_key_options("Signed directory (gives the broker's public key).")
@click.option(
    "--anchors",
    "anchors_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Anchors file, read and advanced on every run (default ${ANCHORS_ENV}, else "
    "$XDG_STATE_HOME/fedbroker/audit-anchors.json). A witness keeps its own.",
)
@click.option(
    "--checkpoint-interval",
    "interval_s",
    type=click.FloatRange(min=0),
    default=DEFAULT_CHECKPOINT_INTERVAL.total_seconds(),
    show_default=True,
    help="The broker's checkpoint interval in seconds.",
)
@click.option(
    "--margin",
    "margin_s",
    type=click.FloatRange(min=0),
    default=DEFAULT_VOUCH_MARGIN.total_seconds(),
    show_default=True,
    help="Seconds past the interval before records after the last checkpoint fail.",
)
@click.option(
    "--strict", is_flag=True, help="Also fail on pending records (not yet due a checkpoint)."
)
def verify(
    bootstrap: str,
    topic: str,
    timeout_s: float,
    wire: str,
    directory: Path | None,
    trust_anchor: Path | None,
    broker_key: Path | None,
    previous_broker_keys: tuple[Path, ...],
    anchors_path: Path | None,
    interval_s: float,
    margin_s: float,
    strict: bool,
) -> None:
    """Verify every chain in the audit topic; exit 1 on any problem.

    Problems: a record altered, missing, duplicated or reordered; a message that
    is not an audit record (named by its place; the rest is still verified); a
    bad checkpoint;
    a chain shorter than, or different at, its anchor; a chain with no signed
    checkpoint; records after the last checkpoint once it is older than the
    interval plus the margin (younger ones are pending; --strict fails on them).
    """
    key = load_broker_key(directory, trust_anchor, broker_key)
    previous = load_previous_keys(previous_broker_keys)
    path = anchors_path if anchors_path is not None else default_anchors_path()
    anchors = [a for k in (key, *previous) for a in load_anchors(path, k)]
    messages, unreadable = read_audit_topic(bootstrap, topic, decoder(wire), timeout_s=timeout_s)
    report = verify_audit(
        [m.record for m in messages],
        key,
        previous_keys=previous,
        anchors=anchors,
        now=datetime.now(UTC),
        checkpoint_interval=timedelta(seconds=interval_s),
        margin=timedelta(seconds=margin_s),
        strict=strict,
    )
    _report(report, messages, topic)
    for place in unreadable:
        click.echo(f"PROBLEM not an audit record {place}", err=True)
    moved = [chain for k in (key, *previous) for chain in save_anchors(path, k, report)]
    if moved:
        click.echo(f"anchors advanced for {len(moved)} chain(s) in {path}")
    if not report.ok or unreadable:
        raise SystemExit(1)
    click.echo("OK: every chain is intact and vouched for by a signed checkpoint")
