"""Codec speed: encode+decode of a typical citizen event, framed vs bare fastavro.

Both sides do the same Avro work on the same record in the same run; the codec
adds the single-object header, fingerprint lookup, schema resolution set-up,
bounds checks and the record <-> datum conversion. Run: ``python -m bench.codec``.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

from fastavro import schemaless_reader, schemaless_writer

from schemas import AVRO_DIR, Codec, load_versions
from schemas._convert import from_datum, to_datum
from tests.schemas.conftest import typical_event


def _rate(fn, seconds: float) -> float:  # type: ignore[no-untyped-def]
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(200):
            fn()
        count += 200
    return count / elapsed


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    seconds = parser.parse_args().seconds
    event = typical_event()
    codec = Codec()
    schema = load_versions(AVRO_DIR)["CitizenEvent"][-1].parsed
    _, datum = to_datum(event)

    def bare() -> None:
        out = io.BytesIO()
        schemaless_writer(out, schema, datum)
        out.seek(0)
        schemaless_reader(out, schema, schema)

    def converted() -> None:
        out = io.BytesIO()
        schemaless_writer(out, schema, to_datum(event)[1])
        out.seek(0)
        from_datum("CitizenEvent", schemaless_reader(out, schema, schema))

    def framed() -> None:
        codec.decode(codec.encode(event))

    size = len(codec.encode(event))
    # Alternate short rounds and keep each side's best: on a shared machine the
    # best round is the one least disturbed by other work, for both sides alike.
    rounds = 6
    bare_rate = conv_rate = codec_rate = 0.0
    for _ in range(rounds):
        bare_rate = max(bare_rate, _rate(bare, seconds / rounds))
        conv_rate = max(conv_rate, _rate(converted, seconds / rounds))
        codec_rate = max(codec_rate, _rate(framed, seconds / rounds))
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {_cpu_model()}, "
          f"{platform.machine()}, nproc {os.cpu_count()}; message {size} bytes")  # fmt: skip
    print(f"bare fastavro schemaless encode+decode (dicts): {bare_rate:,.0f} records/s")
    print(f"fastavro + record<->datum conversion, unframed:  {conv_rate:,.0f} records/s")
    print(f"fedbroker Codec encode+decode (records):         {codec_rate:,.0f} records/s")
    print(f"framing alone (header, fingerprint lookup, bounds checks) costs "
          f"{(conv_rate / codec_rate - 1) * 100:.0f}% over the unframed conversion")  # fmt: skip
    print(f"codec / bare: {codec_rate / bare_rate:.2f} (framing and conversion cost "
          f"{(bare_rate / codec_rate - 1) * 100:.0f}% more time)")  # fmt: skip


if __name__ == "__main__":
    main()
