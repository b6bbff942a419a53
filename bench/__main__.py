"""``python -m bench`` (``make bench``): every benchmark in turn, each with its defaults.

Each prints its own figures and its in-run baseline; record them in
``bench/RESULTS.md``. Name some to run only those: ``python -m bench codec broker``.
"""

from __future__ import annotations

import importlib
import sys
import time

BENCHES = ("codec", "connector", "linkage_quality", "privacy", "broker")


def main() -> None:
    chosen = sys.argv[1:] or list(BENCHES)
    unknown = [name for name in chosen if name not in BENCHES]
    if unknown:
        raise SystemExit(f"unknown bench {unknown}; choose from {', '.join(BENCHES)}")
    failed = []
    for name in chosen:
        print(f"\n=== bench.{name} ===", flush=True)
        module = importlib.import_module(f"bench.{name}")
        sys.argv = [f"bench.{name}"]  # each bench parses its own (empty) arguments
        started = time.perf_counter()
        try:
            module.main()
        except Exception as exc:  # one bench failing must not hide the others' figures
            failed.append(name)
            print(f"bench.{name} failed: {exc!r}", flush=True)
        print(f"=== bench.{name}: {time.perf_counter() - started:.0f} s ===", flush=True)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
