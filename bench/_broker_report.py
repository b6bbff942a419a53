"""The broker bench's figures and their report: what was measured, against which aim.

Kept apart from ``bench.broker`` (which runs the workers and takes the
measurements) so the table, its aims and the Markdown for ``RESULTS.md`` read
in one place.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench._broker_data import COUNCILS, BenchData
from bench.linkage_quality import LinkageQuality
from broker import DEFAULT_DICE_THRESHOLD

__all__ = [
    "AIM_F1",
    "AIM_PER_WORKER",
    "AIM_SCALE",
    "AIM_VS_BASELINE",
    "Latency",
    "Quality",
    "Report",
    "Throughput",
]

AIM_VS_BASELINE = 0.5
AIM_PER_WORKER = 5000.0
AIM_SCALE = 1.8
AIM_F1 = 0.99


@dataclass(frozen=True, slots=True)
class Throughput:
    """One timed drain, in events/s."""

    label: str
    workers: int
    events: int
    full_seconds: float
    steady_seconds: float
    steady_share: float
    worker_shares: tuple[float, ...]
    redelivered: int  # messages processed twice (re-delivered after a rebalance)

    @property
    def full_rate(self) -> float:
        return self.events / self.full_seconds

    @property
    def steady_rate(self) -> float:
        return self.events * self.steady_share / self.steady_seconds


@dataclass(frozen=True, slots=True)
class Latency:
    offered_rate: float
    achieved_rate: float
    sent: int
    notifications: int
    created_ms: tuple[float, ...]  # notification created_at - triggering event published_at
    seen_ms: tuple[float, ...]  # a subscriber reading the match topic - published_at


@dataclass(frozen=True, slots=True)
class Quality:
    threshold: float
    fit: str
    kept: LinkageQuality
    kept_events: int
    every: LinkageQuality
    at_guess: LinkageQuality | None
    pairs_two_workers_equal: bool | None


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(line.split()[1]) for line in
                      Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))  # fmt: skip
        memory = f"{mem_kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        memory = "?"
    return f"{model}, nproc {os.cpu_count()}, {memory}, Python {platform.python_version()}"


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


@dataclass(frozen=True, slots=True)
class Report:
    data: BenchData
    passthrough: Throughput
    one: Throughput
    two: Throughput
    latency: Latency
    quality: Quality
    partitions: int
    seconds: float

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        base = self.passthrough.steady_rate
        one, two, q, lat = self.one, self.two, self.quality, self.latency
        scale = two.steady_rate / one.steady_rate
        rows = [
            ("bare Faust pass-through, 1 worker (baseline)", f"{base:,.0f} ev/s",
             "1.00", "-", "-"),
            ("full pipeline, 1 worker", f"{one.steady_rate:,.0f} ev/s",
             f"{one.steady_rate / base:.2f}", f">= {AIM_VS_BASELINE} x baseline",
             _met(one.steady_rate >= AIM_VS_BASELINE * base)),
            ("full pipeline, 1 worker vs 5,000 ev/s", f"{one.steady_rate:,.0f} ev/s",
             f"{one.steady_rate / base:.2f}", f">= {AIM_PER_WORKER:,.0f} ev/s per worker",
             _met(one.steady_rate >= AIM_PER_WORKER)),
            ("full pipeline, 2 workers", f"{two.steady_rate:,.0f} ev/s",
             f"{two.steady_rate / base:.2f}", f">= {AIM_SCALE} x one worker",
             f"{_met(scale >= AIM_SCALE)} ({scale:.2f}x)"),
            (f"latency p50 at {lat.offered_rate:.0f} ev/s offered, published -> on topic",
             f"{_percentile(lat.seen_ms, 50):,.0f} ms", "-", "-", "-"),
            (f"latency p99 at {lat.offered_rate:.0f} ev/s offered, published -> on topic",
             f"{_percentile(lat.seen_ms, 99):,.0f} ms", "-", "-", "-"),
            (f"precision at fitted threshold {q.threshold:.3f}", f"{q.kept.precision:.4f}",
             "-", "-", "-"),
            ("recall", f"{q.kept.recall:.4f}", "-", "-", "-"),
            ("F1", f"{q.kept.f1:.4f}", "-", f">= {AIM_F1}", _met(q.kept.f1 >= AIM_F1)),
        ]  # fmt: skip
        return rows

    def table(self) -> str:
        header = ("figure", "value", "ratio to baseline", "aim", "aim met")
        rows = [header, *self.rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def details(self) -> list[str]:
        d, lat, q = self.data, self.latency, self.quality
        out = [
            f"machine: {_machine()}",
            f"data: {d.people} synthetic people in {len(COUNCILS)} councils, 30% of "
            f"cross-council rows with one realistic error; {len(d.events):,} signed events "
            f"({d.rows - len(d.events)} quarantined), {d.routed:,} routed messages "
            f"({d.routed / len(d.events):.1f} per event), {self.partitions} partitions",
        ]
        for t in (self.passthrough, self.one, self.two):
            shares = ", ".join(f"{s:.0%}" for s in t.worker_shares)
            out.append(
                f"{t.label}: steady (10-90%) {t.steady_rate:,.0f} ev/s; whole drain "
                f"{t.full_rate:,.0f} ev/s ({t.events:,} events in {t.full_seconds:.1f} s)"
                + (f"; work per worker {shares}" if t.workers > 1 else "")
                + (
                    f"; {t.redelivered:,} messages processed twice after a rebalance"
                    if t.redelivered
                    else ""
                )  # fmt: skip
            )
        out += [
            f"latency: {lat.sent:,} events offered at {lat.offered_rate:.0f}/s "
            f"(achieved {lat.achieved_rate:.0f}/s), {lat.notifications} notifications; "
            f"published -> created_at p50 {_percentile(lat.created_ms, 50):,.0f} ms, "
            f"p99 {_percentile(lat.created_ms, 99):,.0f} ms; published -> read by a "
            f"subscriber p50 {_percentile(lat.seen_ms, 50):,.0f} ms, "
            f"p99 {_percentile(lat.seen_ms, 99):,.0f} ms",
            f"threshold: {q.fit}",
            f"quality on the {q.kept_events:,} events an agreement uses (kept for later "
            f"matches): {q.kept.line()}",
            f"quality on all events (unkept ones match only what came before): {q.every.line()}",
        ]
        if q.at_guess is not None:
            out.append(f"quality at guessed {DEFAULT_DICE_THRESHOLD:.2f} (same stream, "
                       f"pairs filtered by score): {q.at_guess.line()}")  # fmt: skip
        if q.pairs_two_workers_equal is not None:
            out.append(f"two workers reported the same pairs as one: "
                       f"{'yes' if q.pairs_two_workers_equal else 'NO'}")  # fmt: skip
        out.append(f"bench wall time: {self.seconds:.0f} s")
        return out

    def markdown(self) -> str:
        lines = ["| figure | value | ratio to baseline | aim | aim met |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows()]
        return "\n".join(lines)
