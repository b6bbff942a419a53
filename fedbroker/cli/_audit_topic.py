"""Reading ``fed.audit`` for ``fedbroker audit``: every partition, start to current end.

It reads every partition from the beginning to the end offsets seen at start,
so ``fed.audit`` must be kept with unlimited retention (``retention.ms=-1``): a
chain whose start was deleted reports its first records as missing.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from consent import AuditProblem, KafkaSecurity, audit_record_from_dict
from fedbroker._errors import CommandError
from fedbroker._topics import read_to_end
from schemas import AuditRecord, FedbrokerError

__all__ = [
    "DEFAULT_AUDIT_TOPIC",
    "DEFAULT_BOOTSTRAP",
    "DEFAULT_READ_TIMEOUT_S",
    "AuditMessage",
    "Unreadable",
    "common_options",
    "decoder",
    "describe_problem",
    "read_audit_topic",
]

DEFAULT_AUDIT_TOPIC = "fed.audit"
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_READ_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class AuditMessage:
    """One record of the topic with its Kafka coordinates, for reporting."""

    partition: int
    offset: int
    record: AuditRecord


def _avro_decoder() -> Callable[[bytes], AuditRecord]:
    # imported late so that `audit --help` never needs the codec
    codec_class = getattr(importlib.import_module("schemas"), "Codec", None)
    if codec_class is None:
        raise CommandError("schemas.Codec is not available: cannot decode Avro audit records")
    codec = codec_class()

    def decode(data: bytes) -> AuditRecord:
        record = codec.decode_as(data, AuditRecord)
        assert isinstance(record, AuditRecord)
        return record

    return decode


def _json_decoder(data: bytes) -> AuditRecord:
    return audit_record_from_dict(json.loads(data))


def decoder(wire: str) -> Callable[[bytes], AuditRecord]:
    """The decoder for ``--wire`` (``avro``, or ``json`` in development)."""
    return _json_decoder if wire == "json" else _avro_decoder()


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A message of the topic that is not an audit record: where it is, and the reason code."""

    partition: int
    offset: int
    reason: str

    def __str__(self) -> str:
        return f"[partition {self.partition} offset {self.offset}] ({self.reason})"


def read_audit_topic(
    bootstrap: str,
    topic: str,
    decode: Callable[[bytes], AuditRecord],
    *,
    timeout_s: float = DEFAULT_READ_TIMEOUT_S,
) -> tuple[list[AuditMessage], list[Unreadable]]:
    """Every record of every partition, from the beginning to the end offsets seen at start.

    A message that does not decode is returned apart, by its place, never
    raised: the topic is append-only and kept for ever, so one junk message
    would otherwise stop every later verification and subject-access request.

    Raises:
        CommandError: the topic does not exist, or the end was not reached in time.
    """
    security = KafkaSecurity.from_env(os.environ)  # the auditor's credentials, never flags
    records = read_to_end(
        bootstrap,
        topic,
        timeout_s=timeout_s,
        missing_ok=False,
        consumer_config=security.kafka_python(),
    )
    messages: list[AuditMessage] = []
    unreadable: list[Unreadable] = []
    for r in records:  # already in (partition, offset) order
        try:
            messages.append(AuditMessage(r.partition, r.offset, decode(r.value or b"")))
        except FedbrokerError as exc:
            unreadable.append(Unreadable(r.partition, r.offset, exc.reason))
        except ValueError:  # the development JSON wire: not JSON at all
            unreadable.append(Unreadable(r.partition, r.offset, "decode-failed"))
    return messages, unreadable


def describe_problem(problem: AuditProblem, messages: list[AuditMessage]) -> str:
    """A verification problem as printed, with the Kafka place of the record it names."""
    where = ""
    if 0 <= problem.position < len(messages):
        at = messages[problem.position]
        where = f" [partition {at.partition} offset {at.offset}]"
    return f"PROBLEM {problem}{where}"


def common_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--bootstrap``, ``--topic``, ``--timeout`` and the hidden ``--wire``."""
    for option in reversed(
        [
            click.option(
                "--bootstrap",
                envvar="KAFKA_BOOTSTRAP_SERVERS",
                default=DEFAULT_BOOTSTRAP,
                show_default=True,
                help="Kafka bootstrap servers.",
            ),
            click.option("--topic", default=DEFAULT_AUDIT_TOPIC, show_default=True),
            click.option(
                "--timeout",
                "timeout_s",
                type=float,
                default=DEFAULT_READ_TIMEOUT_S,
                show_default=True,
                help="Seconds to read the topic to its end.",
            ),
            click.option(
                "--wire",
                type=click.Choice(["avro", "json"]),
                default="avro",
                hidden=True,
                help="Record encoding on the topic (json: development only).",
            ),
        ]
    ):
        function = option(function)
    return function
