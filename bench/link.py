"""``fedbroker link`` at scale: two 200,000-row extracts, wall time and peak memory.

Issue 12 asks for under 5 minutes and under 4 GiB on the project's 2-core
machine. The extracts are the connectors' synthetic councils (two of them,
realistic errors in 30% of the cross-council rows), cut to ``--rows`` rows
each; the truth file lists every cross-file pair of one person's rows. The
command runs as a child process, exactly as a council would run it
(``fedbroker link --stats --truth ... --quiet``), so its peak RSS is the
child's own. Generating the data is not timed; ``--data DIR`` keeps it for the
next run. Run: ``python -m bench.link [--rows N] [--data DIR]``; the last line
is ``BENCH {json}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from connectors import generate_federation

LEFT, RIGHT = "E08000001", "E08000002"
DEFAULT_ROWS = 200_000
#: The synthetic councils write about one row per person per council.
_ROWS_PER_PERSON = 0.85  # a little under, so each file reaches --rows
_MIB = 1024 * 1024
_SAMPLE_S = 0.5


def _cut(source: Path, target: Path, rows: int) -> set[str]:
    """The first ``rows`` rows of a CSV (and its header) into ``target``; their refs."""
    refs: set[str] = set()
    with (
        source.open(newline="", encoding="utf-8") as src,
        target.open("w", newline="", encoding="utf-8") as out,
    ):
        reader, writer = csv.DictReader(src), None
        for row in reader:
            if len(refs) == rows:
                break
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
            refs.add(row["ref"])
    return refs


def prepare(folder: Path, rows: int, seed: int) -> tuple[Path, Path, Path, Path, int]:
    """(left, right, mapping, truth pairs, true pair count), generated once per folder."""
    left, right = folder / "left.csv", folder / "right.csv"
    mapping, truth = folder / "synth" / "mapping.yaml", folder / "truth-pairs.csv"
    if not truth.exists():
        people = int(rows / _ROWS_PER_PERSON) + 1
        synth = generate_federation(
            folder / "synth", councils=(LEFT, RIGHT), people=people, seed=seed
        )
        mapping = synth.mapping
        kept = {
            LEFT: _cut(synth.files[LEFT], left, rows),
            RIGHT: _cut(synth.files[RIGHT], right, rows),
        }
        person: dict[str, dict[str, list[str]]] = defaultdict(lambda: {LEFT: [], RIGHT: []})
        with synth.truth.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row["ref"] in kept.get(row["council"], ()):
                    person[row["person_id"]][row["council"]].append(row["ref"])
        with truth.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(("left_ref", "right_ref"))
            for sides in person.values():
                writer.writerows((a, b) for a in sides[LEFT] for b in sides[RIGHT])
    with truth.open(newline="", encoding="utf-8") as handle:
        pairs = sum(1 for _ in handle) - 1
    return left, right, mapping, truth, pairs


def _tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc (Linux)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:  # it ended meanwhile
            continue
        rss = [line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")]
        total += int(rss[0]) if rss else 0
        pending.extend(int(c) for c in children)
    return total


def _pairs(path: Path) -> set[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {(r["left_ref"], r["right_ref"]) for r in csv.DictReader(handle)}


def run(rows: int, data: Path, seed: int) -> dict[str, float | int | str]:
    started = time.perf_counter()
    left, right, mapping, truth, true_pairs = prepare(data, rows, seed)
    prepared_s = time.perf_counter() - started
    out = data / "pairs.csv"
    command = [sys.executable, "-m", "fedbroker", "link", "--left", str(left), "--right",
               str(right), "--mapping", str(mapping), "--out", str(out), "--stats",
               "--truth", str(truth), "--quiet"]  # fmt: skip
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True)  # noqa: S603
        tree_kib = 0
        while True:  # the encoding workers are the child's children: sum the tree
            tree_kib = max(tree_kib, _tree_rss_kib(child.pid))
            try:
                child.wait(timeout=_SAMPLE_S)
                break
            except subprocess.TimeoutExpired:
                continue
        link_s = time.perf_counter() - started
        stdout.seek(0)
        stderr.seek(0)
        if child.returncode != 0:
            raise SystemExit(
                f"fedbroker link failed ({child.returncode}):\n{stderr.read()[-2000:]}"
            )
        print(stdout.read(), end="")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    found, truth_pairs = _pairs(out), _pairs(truth)
    tp = len(found & truth_pairs)
    return {
        "rows_per_file": rows,
        "true_pairs": true_pairs,
        "pairs": len(found),
        "precision": tp / len(found) if found else 0.0,
        "recall": tp / len(truth_pairs) if truth_pairs else 0.0,
        "link_s": round(link_s, 1),
        # The largest single process (kernel figure), and the process tree sampled.
        "peak_rss_mib": round(usage.ru_maxrss * 1024 / _MIB, 1),
        "peak_tree_rss_mib": round(tree_kib * 1024 / _MIB, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "data_prepared_s": round(prepared_s, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count() or 0,
        "machine": platform.processor() or platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows per extract")
    parser.add_argument("--data", type=Path, default=None, help="keep the data here")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    if args.data is None:
        with tempfile.TemporaryDirectory() as folder:
            figures = run(args.rows, Path(folder), args.seed)
    else:
        args.data.mkdir(parents=True, exist_ok=True)
        figures = run(args.rows, args.data, args.seed)
    print(
        f"rows: {figures['rows_per_file']:,} per file; true cross-file pairs: "
        f"{figures['true_pairs']:,}; pairs found: {figures['pairs']:,} "
        f"(precision {figures['precision']:.4f}, recall {figures['recall']:.4f})"
    )
    print(f"fedbroker link: {figures['link_s']} s wall, {figures['cpu_s']} s CPU (all its "
          f"processes), peak RSS {figures['peak_tree_rss_mib']} MiB for the process tree, "
          f"{figures['peak_rss_mib']} MiB the largest process (aim < 300 s, < 4096 MiB); "
          f"load average {figures['load_average_1m']} on {figures['cpus']} cores")  # fmt: skip
    print("BENCH " + json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
