"""The streaming broker, end to end: throughput, scale-out, latency and matching quality.

One run measures, on its own Kafka (or ``KAFKA_BOOTSTRAP_SERVERS``):

* a bare Faust pass-through worker (same ``faust.App`` settings as the broker,
  one agent that consumes the council topics and produces every message
  unchanged): the baseline, in events/s;
* the full pipeline (``fedbroker broker run``: verify, route by every token,
  match, decide, notify, audit) with one worker and with two, in events/s;
* what each drain cost per event: CPU-seconds of each worker process and of
  the (local) Kafka broker process, routed messages, token-state changelog
  records and bytes, and each worker's peak RSS;
* end-to-end latency, published -> notified, at a fixed offered rate into a
  running one-worker broker (1,000 ev/s, or half of one worker's rate if lower);
* precision, recall and F1 of the pairs the stream reports on
  ``<prefix>.broker.matches`` against the synthetic councils' ground truth, at
  the threshold fitted by the broker's own EM on the same events' scores.

Every throughput run drains topics that were filled before its workers
started, so the figures are the broker's, not the connector's; events are
built once by the connector's ``EventFactory``. Rates are given over the whole
drain (first message processed to last) and over its steady middle (10%-90% of
the work), which leaves out start-up and the initial group rebalance.
With ``--backfill-people N`` (say 100,000: about 200,000 events) a last
one-worker drain of that many people's events shows whether cost grows with
the data (its rate against the small run's, and its peak RSS). The run ends
with one machine-readable line, ``BENCH {json}``, holding every figure.
Run: ``python -m bench.broker [--people N] [--rate R --seconds S] [--backfill-people N]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer

from bench._broker_data import (
    COUNCILS,
    BenchData,
    build_data,
)
from bench._broker_kafka import (
    POLL_S,
    Drain,
    DrainStuck,
    GroupCaughtUp,
    ProcessUsage,
    Worker,
    broker_worker,
    end_total,
    fill,
    kafka_pid,
    metric_counts,
    new_prefix,
    passthrough_worker,
    read_topic,
    source_topics,
    watch,
)
from bench._broker_latency import run_latency
from bench._broker_report import (
    Backfill,
    BackfillStuck,
    Costs,
    Quality,
    Recovery,
    Report,
    Throughput,
)
from bench._security import client_config
from bench.linkage_quality import quality
from broker import DEFAULT_DICE_THRESHOLD
from broker.app import FAUST_TUNING, SESSION_TIMEOUT_S
from fedbroker import KafkaCluster

__all__ = ["main", "run"]

BENCH_PORT = 29492
DEFAULT_PEOPLE = 2500
DEFAULT_SEED = 20261123
DEFAULT_PARTITIONS = 4
MAX_AUTO_RATE = 1000
AUTO_SHARE = 0.5
#: 200,000 events at a few hundred a second take longer than a small drain's limit.
BACKFILL_TIMEOUT_S = 3600.0
Pair = tuple[str, str]


def _bootstrap(home: Path) -> tuple[str, KafkaCluster | None]:
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        return existing, None
    cluster = KafkaCluster(1, BENCH_PORT, home)
    return cluster.up(fresh=True), cluster


def _throughput(label: str, drain: Drain, workers: int, events: int, expected: int) -> Throughput:
    steady, share = drain.steady_seconds()
    return Throughput(label, workers, events, drain.full_seconds(), steady, share,
                      tuple(drain.shares), drain.total - expected)  # fmt: skip


def _stop(workers: Sequence[Worker]) -> None:
    for worker in workers:
        worker.stop()


def run_passthrough(data: BenchData, bootstrap: str, work: Path, partitions: int) -> Throughput:
    prefix = new_prefix()
    sink = f"{prefix}.passthrough"
    fill(bootstrap, prefix, data, COUNCILS, partitions, extra=[sink])
    worker = passthrough_worker("passthrough", bootstrap=bootstrap,
                                sources=source_topics(prefix, COUNCILS), sink=sink,
                                group=f"{prefix}-passthrough", work=work,
                                partitions=partitions)  # fmt: skip
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **client_config())
    caught_up = GroupCaughtUp(bootstrap, f"{prefix}-passthrough", source_topics(prefix, COUNCILS))
    try:
        worker.start()

        def progress() -> tuple[float, list[float]]:
            return float(end_total(consumer, sink)), [1.0]

        drain = watch(progress, len(data.events), [worker], caught_up=caught_up)
    finally:
        consumer.close()
        caught_up.close()
        worker.stop()
    return _throughput("bare Faust pass-through", drain, 1, len(data.events), len(data.events))


def _changelog(bootstrap: str, group: str) -> tuple[int, int]:
    """Records and value bytes on the token-state changelog: references and sightings."""
    records = read_topic(bootstrap, f"{group}-token-state-changelog")
    return len(records), sum(len(v or b"") for _, v, _ in records)


def run_pipeline(
    data: BenchData, bootstrap: str, work: Path, partitions: int, workers: int,
    threshold: float, timeout: float = 900.0,
) -> tuple[Throughput, str, Costs]:  # fmt: skip
    """Drain the filled topics with ``workers`` broker workers; returns the prefix used."""
    prefix = new_prefix()
    fill(bootstrap, prefix, data, COUNCILS, partitions)
    group = f"{prefix}-broker"
    started = [broker_worker(data, f"broker-{workers}w-{i}", bootstrap=bootstrap, prefix=prefix,
                             group=group, work=work, partitions=partitions,
                             threshold=threshold) for i in range(workers)]  # fmt: skip
    kafka = kafka_pid(bootstrap)
    try:
        for worker in started:
            worker.start()

        at_first: list[list[ProcessUsage]] = []

        def progress() -> tuple[float, list[float]]:
            counts = [metric_counts(w.metrics_port) or {"match": 0.0} for w in started]
            done = sum(c["match"] for c in counts)
            if done and not at_first:  # CPU from here on is the drain's, not start-up's
                at_first.append([w.usage() for w in started])
                at_first.append([ProcessUsage.of(kafka)] if kafka is not None else [])
            return done, [c["match"] / done if done else 0.0 for c in counts]

        caught_up = GroupCaughtUp(bootstrap, group, [*source_topics(prefix, COUNCILS),
                                                     f"{prefix}.broker.routed"])  # fmt: skip
        try:
            drain = watch(progress, data.routed, started, caught_up=caught_up, timeout=timeout)
        finally:
            caught_up.close()
        first = at_first[0] if at_first else [ProcessUsage() for _ in started]
        usage = [ProcessUsage(u.cpu_seconds - f.cpu_seconds, u.peak_rss_bytes)
                 for u, f in zip((w.usage() for w in started), first, strict=True)]  # fmt: skip
        kafka_cpu = None
        if kafka is not None and at_first and at_first[1]:
            kafka_cpu = ProcessUsage.of(kafka).cpu_seconds - at_first[1][0].cpu_seconds
        counts = [metric_counts(w.metrics_port) or {} for w in started]
        rejected = sum(c.get("rejected", 0.0) for c in counts)
        if rejected:
            reasons: dict[str, float] = {}
            for c in counts:
                for key, value in c.items():
                    if key.startswith("rejected:") and value:
                        reasons[key[9:]] = reasons.get(key[9:], 0.0) + value
            named = ", ".join(f"{r} {n:.0f}" for r, n in sorted(reasons.items()))
            print(f"warning: {rejected:.0f} messages rejected by the broker ({named})")
    finally:
        _stop(started)  # a clean stop flushes what the workers were still sending
    records, size = _changelog(bootstrap, group)
    costs = Costs(len(data.events), tuple(u.cpu_seconds for u in usage),
                  tuple(u.peak_rss_bytes for u in usage), kafka_cpu,
                  sum(c.get("routed", 0.0) for c in counts), records, size)  # fmt: skip
    label = f"full pipeline, {workers} worker{'s' if workers > 1 else ''}"
    return _throughput(label, drain, workers, len(data.events), data.routed), prefix, costs


def _stream_pairs(bootstrap: str, prefix: str) -> list[dict[str, Any]]:
    import json

    return [json.loads(v) for _, v, _ in read_topic(bootstrap, f"{prefix}.broker.matches")]


def _pair(a: str, b: str) -> Pair:
    return (a, b) if a <= b else (b, a)


def run_quality(
    data: BenchData, bootstrap: str, prefix: str, threshold: float, other: str | None
) -> Quality:
    """Score the stream's pairs against the truth (kept events: what the broker must link)."""
    person = {e.event.event_id: e.person for e in data.events}
    kept = {e.event.event_id for e in data.events if e.kept}
    streamed = _stream_pairs(bootstrap, prefix)
    found: dict[Pair, dict[str, Any]] = {}
    for pair in streamed:
        a, b = (e["event_id"] for e in pair["events"])
        found[_pair(a, b)] = pair
    by_person: dict[str, list[str]] = {}
    for event_id, subject in person.items():
        by_person.setdefault(subject, []).append(event_id)
    truth = {_pair(a, b) for ids in by_person.values() for a, b in combinations(ids, 2)}

    def within(pairs: set[Pair]) -> set[Pair]:
        return {p for p in pairs if p[0] in kept and p[1] in kept}

    at_guess = None
    if threshold <= DEFAULT_DICE_THRESHOLD:
        guessed = {p for p, v in found.items()
                   if v["method"] == "exact" or v["score"] >= DEFAULT_DICE_THRESHOLD}  # fmt: skip
        at_guess = quality(within(guessed), within(truth))
    equal = None
    if other is not None:
        # Kept events' pairs only: an unkept event meets only what arrived before
        # it, and two workers see the councils' topics interleaved differently.
        theirs = {_pair(*(e["event_id"] for e in p["events"])) for p in
                  _stream_pairs(bootstrap, other)}  # fmt: skip
        equal = within(theirs) == within(set(found))
    return Quality(
        threshold=threshold,
        fit=data.fit.describe(),
        kept=quality(within(set(found)), within(truth)),
        kept_events=len(kept),
        every=quality(set(found), truth),
        at_guess=at_guess,
        pairs_two_workers_equal=equal,
    )


def run_recovery(data: BenchData, bootstrap: str, work: Path, partitions: int,
                 threshold: float) -> Recovery:  # fmt: skip
    """Two workers drain the backlog; one is killed (SIGKILL) a third of the way in.

    The survivor keeps its own partitions going, then, once the victim's session
    has expired, takes the victim's over: a rebalance, the victim's tables
    restored from their changelogs (no standby replicas), and the messages the
    victim had not committed processed again.
    """
    prefix = new_prefix()
    fill(bootstrap, prefix, data, COUNCILS, partitions)
    group = f"{prefix}-broker"
    survivor, victim = (broker_worker(data, f"recovery-{i}", bootstrap=bootstrap, prefix=prefix,
                                      group=group, work=work, partitions=partitions,
                                      threshold=threshold) for i in range(2))  # fmt: skip
    caught_up = GroupCaughtUp(bootstrap, group, [*source_topics(prefix, COUNCILS),
                                                 f"{prefix}.broker.routed"])  # fmt: skip
    try:
        survivor.start()
        victim.start()
        deadline = time.monotonic() + 600
        while True:  # both hold partitions and a third of the work is done
            survivor.check()
            victim.check()
            mine, theirs = (metric_counts(w.metrics_port) or {} for w in (survivor, victim))
            if (
                mine.get("match")
                and theirs.get("match")
                and (mine["match"] + theirs["match"] >= data.routed / 3)
            ):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the two workers never shared the work:\n{victim.tail()}")
            time.sleep(POLL_S)  # polling interval of a condition
        assert victim.process is not None
        victim.process.kill()
        killed = time.perf_counter()
        victim.process.wait()
        rebalancing, takeover, last_check = False, None, killed
        while True:
            survivor.check()
            now = time.perf_counter()
            ready = (metric_counts(survivor.metrics_port) or {}).get("ready", 0.0)
            rebalancing |= ready == 0.0
            if rebalancing and ready == 1.0 and takeover is None:
                takeover = now - killed
            if now - last_check > 1:
                last_check = now
                if caught_up():
                    break
            if now - killed > 600:
                raise RuntimeError(f"the survivor never drained the backlog:\n{survivor.tail()}")
            time.sleep(POLL_S)  # polling interval of a condition
        drained = time.perf_counter() - killed
        done = (metric_counts(survivor.metrics_port) or {}).get("match", 0.0)
    finally:
        caught_up.close()
        _stop([survivor, victim])
    return Recovery(int(FAUST_TUNING["table_standby_replicas"]), SESSION_TIMEOUT_S, takeover,
                    drained, max(0.0, done + theirs["match"] - data.routed))  # fmt: skip


def run_backfill(people: int, seed: int, bootstrap: str, work: Path, partitions: int,
                 threshold: float) -> Backfill | BackfillStuck:  # fmt: skip
    """One worker drains ``people``'s events (about two each) from a full backlog.

    A drain that stops moving is reported as such, with the other figures of
    the run, not raised: it is the finding.
    """
    print(f"backfill: building {people} people's events ...", flush=True)
    data = build_data(work / "backfill", people=people, seed=seed)
    print(f"backfill: one worker drains {len(data.events):,} events ...", flush=True)
    # Its own folder: a worker's RocksDB files are named by table, not by app id,
    # so the small run's data dir would hand this group that run's offsets.
    try:
        drained, _, costs = run_pipeline(data, bootstrap, work / "backfill", partitions, 1,
                                         threshold, timeout=BACKFILL_TIMEOUT_S)  # fmt: skip
    except DrainStuck as stuck:
        print(f"backfill: {stuck}", flush=True)
        return BackfillStuck(people, len(data.events), stuck.done, stuck.total, stuck.seconds)
    return Backfill(people, drained, costs)


def run(*, people: int, seed: int, partitions: int, rate: float | None, seconds: float,
        threshold: float | None, backfill_people: int = 0) -> Report:  # fmt: skip
    began = time.perf_counter()
    home = Path(".fedbroker").resolve()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"building {people} people's events (connector code, offline) ...", flush=True)
        data = build_data(work, people=people, seed=seed)
        chosen = data.fit.threshold if threshold is None else threshold
        bootstrap, cluster = _bootstrap(home)
        try:
            print("pass-through baseline ...", flush=True)
            passthrough = run_passthrough(data, bootstrap, work, partitions)
            print("pipeline, one worker ...", flush=True)
            one, one_prefix, one_costs = run_pipeline(data, bootstrap, work, partitions, 1, chosen)
            print("pipeline, two workers ...", flush=True)
            two, two_prefix, two_costs = run_pipeline(data, bootstrap, work, partitions, 2,
                                                      chosen)  # fmt: skip
            print("quality ...", flush=True)
            scored = run_quality(data, bootstrap, one_prefix, chosen, two_prefix)
            if rate is None:
                # A fixed rate the one worker can sustain; above it, latency is queueing.
                rate = float(min(MAX_AUTO_RATE, max(1, round(one.steady_rate * AUTO_SHARE))))
            print(f"latency at {rate:.0f} events/s ...", flush=True)
            latency = run_latency(data, bootstrap, work, partitions, chosen, rate, seconds)
            print("recovery after one of two workers is killed ...", flush=True)
            recovery = run_recovery(data, bootstrap, work, partitions, chosen)
            backfill = None
            if backfill_people:
                backfill = run_backfill(backfill_people, seed, bootstrap, work, partitions, chosen)
        finally:
            if cluster is not None:
                cluster.down()
    return Report(data, passthrough, one, two, latency, scored, partitions,
                  time.perf_counter() - began, one_costs, two_costs, backfill,
                  recovery)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--people", type=int, default=DEFAULT_PEOPLE, help="synthetic people (about 2 events each)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS)
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help=f"offered events/s for the latency run (default: {MAX_AUTO_RATE}/s "
        f"or {AUTO_SHARE * 100:.0f}%% of the measured one-worker rate if lower)",
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the latency run")
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="fix the Dice threshold (default: the EM fit on the events)",
    )
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="also print the table as Markdown for bench/RESULTS.md",
    )
    parser.add_argument(
        "--backfill-people",
        type=int,
        default=0,
        help="also drain this many people's events (100000: ~200,000 events) in one worker",
    )
    args = parser.parse_args(argv)  # fmt: skip
    report = run(people=args.people, seed=args.seed, partitions=args.partitions,
                 rate=args.rate, seconds=args.seconds, threshold=args.threshold,
                 backfill_people=args.backfill_people)  # fmt: skip
    print()
    print(report.table())
    print()
    print("\n".join(report.details()))
    if args.markdown:
        print()
        print(report.markdown())
    print(report.bench_line())


if __name__ == "__main__":
    main()
