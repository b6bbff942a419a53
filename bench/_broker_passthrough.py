"""The broker bench's baseline: a bare Faust pass-through worker.

The same ``faust.App`` settings as ``broker/app.py`` (raw serializers, acks -1,
the same session timeouts, offset reset and store, and the same client tuning,
``broker.app.FAUST_TUNING``, and producer buffer), one agent that reads the
council topics and sends every message unchanged to one sink topic: Faust and
Kafka with no work. Run as ``python -m bench._broker_passthrough --bootstrap ...``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import faust

from bench._security import bench_security
from broker._kafka_client import faust_credentials
from broker.app import FAUST_TUNING, PRODUCER_BUFFER_MESSAGES


def build(args: argparse.Namespace) -> faust.App:
    app = faust.App(
        args.app_id,
        broker=f"kafka://{args.bootstrap}",
        # the same FEDBROKER_KAFKA_* credentials as `broker run` (none: plaintext)
        broker_credentials=faust_credentials(bench_security()),
        store="rocksdb://",
        topic_partitions=args.partitions,
        topic_replication_factor=1,
        web_enabled=False,
        datadir=args.data_dir,
        producer_acks=-1,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        consumer_auto_offset_reset="earliest",
        **FAUST_TUNING,
    )
    app.producer.buffer.max_messages = PRODUCER_BUFFER_MESSAGES
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    sources = app.topic(*args.source, **raw)
    sink = app.topic(args.sink, **raw)

    @app.agent(sources)
    async def passthrough(stream: Any) -> None:
        async for event in stream.events():
            await sink.send(key=event.key, value=event.value)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--source", action="append", required=True)
    parser.add_argument("--sink", required=True)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--data-dir", required=True)
    app = build(parser.parse_args())
    sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]
    app.main()


if __name__ == "__main__":
    main()
