"""The start-up stall: do workers started while councils publish commit every input?

Each run starts two ``fedbroker broker run`` workers and, at the same moment,
three councils' connectors (``fedbroker connector run --once``) on fresh topics
and a fresh group. Once the connectors have exited (publishing stopped) it waits
until the group has committed every input partition (council topics and the
routed topic) to its end. A partition still short of its end while the group is
Stable and has committed nothing for ``--quiet`` seconds is "stuck": nothing
will move it. A run whose group is still rebalancing or still committing after
``--cap`` seconds is "unsettled" instead (an overloaded machine's heartbeats
miss the session timeout and the group rebalances over and over); its late
partitions are reported apart. Before the fix (``broker/_consumer.py``) about
one run in four left partitions stuck.

Run: ``python -m bench.stall [--runs 20] [--quiet 30] [--cap 300]``; needs Kafka at
``KAFKA_BOOTSTRAP_SERVERS`` (default 127.0.0.1:29092). Prints one line per run
and ends with ``BENCH {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from connectors import SyntheticFederation, generate_federation, generate_linkage_key
from consent import DevFederation, build_dev_federation, write_secret_file
from tests.broker.workers import GroupProgress, start_worker
from tests.connectors.conftest import COUNCILS, REPO
from tests.kafka_fixtures import unique_name

DEFAULT_RUNS = 20
DEFAULT_QUIET_S = 30.0
DEFAULT_CAP_S = 300.0
DEFAULT_PEOPLE = 60
WORKERS = 2


def council_config(
    home: Path,
    council: str,
    *,
    bootstrap: str,
    prefix: str,
    federation: DevFederation,
    synthetic: SyntheticFederation,
    linkage_keys: Path,
) -> Path:
    """A connector config whose inbox already holds the council's synthetic extract."""
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    shutil.copy(synthetic.files[council], inbox / "extract.csv")
    keys = federation.keys[council].signing
    assert keys is not None
    document = {
        "council": council,
        "directory": str(federation.directory_path),
        "trust_anchor": str(federation.trust_anchor),
        "signing_key": str(keys.private),
        "linkage_keys": str(linkage_keys),
        "outbox": str(home / "outbox.sqlite"),
        "kafka": {"bootstrap": bootstrap, "topic_prefix": prefix},
        "poll_interval_s": 0.2,
        "sources": [
            {"name": "revenues", "kind": "csv", "path": str(inbox),
             "mapping": str(synthetic.mapping)}
        ],
    }  # fmt: skip
    config = home / "connector.yaml"
    config.write_text(yaml.safe_dump(document))
    return config


def drain(
    bootstrap: str, group: str, prefix: str, *, quiet: float, cap: float
) -> tuple[list[str], str]:
    """Wait until every input is committed, stuck, or ``cap`` passes: late partitions, verdict."""
    started = last_change = time.monotonic()
    seen: dict[object, int | None] = {}
    progress = GroupProgress(bootstrap, group, prefix)
    try:
        while True:
            late = progress.behind()
            if not late:
                return [], "drained"
            # Only the late partitions' commits count: checkpoint ticks keep the
            # routed topic's commits moving while a council partition stays stuck.
            committed = progress.committed()
            now = {tp: committed.get(tp) for tp in late}
            if now != seen:
                seen, last_change = dict(now), time.monotonic()
            names = [f"{tp.topic}/{tp.partition}" for tp in late]
            state = progress.state()
            if time.monotonic() - last_change >= quiet and state == "Stable":
                return names, "stuck"
            if time.monotonic() - started >= cap:
                return names, f"unsettled ({state})"
            time.sleep(1.0)  # polling interval of the condition
    finally:
        progress.close()


def one_run(
    n: int,
    work: Path,
    *,
    bootstrap: str,
    federation: DevFederation,
    synthetic: SyntheticFederation,
    linkage_keys: Path,
    quiet: float,
    cap: float,
) -> dict[str, object]:
    prefix, group = unique_name("stall"), unique_name("stall-broker")
    folder = work / prefix
    configs = [
        council_config(folder / c, c, bootstrap=bootstrap, prefix=prefix,
                       federation=federation, synthetic=synthetic, linkage_keys=linkage_keys)
        for c in COUNCILS
    ]  # fmt: skip
    started = time.monotonic()
    workers = [
        start_worker(bootstrap, federation, group=group, prefix=prefix,
                     data_dir=folder / f"data-{i}", log=folder / f"worker-{i}.log",
                     options=["--threshold", "0.8"], wait_ready=False)
        for i in range(WORKERS)
    ]  # fmt: skip
    connectors = [
        subprocess.Popen(
            [str(REPO / ".venv/bin/fedbroker"), "connector", "run", "--config", str(c), "--once"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for c in configs
    ]  # fmt: skip
    try:
        codes = [c.wait(timeout=300) for c in connectors]
        published = time.monotonic()
        late, verdict = drain(bootstrap, group, prefix, quiet=quiet, cap=cap)
        done = time.monotonic()
        crashed = [i for i, w in enumerate(workers) if w.poll() is not None]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
    result: dict[str, object] = {
        "run": n,
        "verdict": verdict.split()[0],
        "group": verdict,
        "stuck": len(late) if verdict == "stuck" else 0,
        "late_partitions": late,
        "publish_s": round(published - started, 1),
        "drain_s": round(done - published, 1),
        "connector_failures": sum(1 for c in codes if c != 0),
        "workers_crashed": len(crashed),
        "crash_codes": [workers[i].returncode for i in crashed],
    }
    if late or crashed:  # kept to be read: a worker that died, or a partition left behind
        keep = Path(tempfile.gettempdir()) / f"stall-logs-{prefix}"
        for log in folder.glob("worker-*.log"):
            keep.mkdir(exist_ok=True)
            shutil.copy(log, keep / log.name)
        result["logs"] = str(keep)
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument(
        "--quiet",
        type=float,
        default=DEFAULT_QUIET_S,
        help="seconds a Stable group commits nothing before late is stuck",
    )
    parser.add_argument("--cap", type=float, default=DEFAULT_CAP_S,
                        help="seconds after publishing before a run is unsettled")  # fmt: skip
    parser.add_argument("--people", type=int, default=DEFAULT_PEOPLE)
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:29092")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-stall-") as tmp:
        work = Path(tmp) / "runs"
        federation = build_dev_federation(Path(tmp) / "federation", councils=list(COUNCILS))
        synthetic = generate_federation(Path(tmp) / "synth", councils=COUNCILS,
                                        people=args.people)  # fmt: skip
        keys = write_secret_file(
            Path(tmp) / "linkage-keys.json",
            json.dumps({"1": generate_linkage_key(1).secret.hex()}).encode(),
        )
        for n in range(1, args.runs + 1):
            result = one_run(
                n, work, bootstrap=bootstrap, federation=federation, synthetic=synthetic,
                linkage_keys=keys, quiet=args.quiet, cap=args.cap,
            )  # fmt: skip
            results.append(result)
            print(json.dumps(result), flush=True)
    summary = {
        "bench": "stall",
        "runs": len(results),
        "workers": WORKERS,
        "councils": len(COUNCILS),
        "runs_with_stuck_partitions": sum(1 for r in results if r["stuck"]),
        "stuck_partitions": sum(int(str(r["stuck"])) for r in results),
        "runs_unsettled": sum(1 for r in results if r["verdict"] == "unsettled"),
        "connector_failures": sum(int(str(r["connector_failures"])) for r in results),
        "workers_crashed": sum(int(str(r["workers_crashed"])) for r in results),
    }
    print("BENCH " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
