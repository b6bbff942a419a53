"""The benches' Kafka credentials: the same settings every fedbroker process reads.

A bench against a secured cluster takes its party's credentials from
``FEDBROKER_KAFKA_SECURITY_FILE`` (a YAML file naming the CA, certificate and
key files) or ``FEDBROKER_KAFKA_*`` variables, exactly as ``broker run`` and a
connector do (docs/operations.md), never from its command line. The workers a
bench starts inherit the same environment; its own clients (fillers, readers,
the lag watcher) pass ``client_config()`` to kafka-python. Nothing here logs.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from consent import KafkaSecurity

__all__ = ["bench_security", "client_config"]


@functools.cache
def bench_security() -> KafkaSecurity:
    """The credentials in this process's environment (unsecured when none are set)."""
    return KafkaSecurity.from_env(os.environ)


def client_config() -> dict[str, Any]:
    """kafka-python keyword arguments for those credentials ({} when unsecured)."""
    return bench_security().kafka_python()
