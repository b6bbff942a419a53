"""The demo's after-the-fact checks on Kafka: nothing left unprocessed, nothing in clear.

``behind`` is how the demo knows the broker processed every published event
(its group committed every input offset), not merely that time has passed.
``scan`` looks for the input's clear values in every topic of the run.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from fedbroker._topics import read_to_end

__all__ = ["MIN_NEEDLE", "behind", "clear_values", "count_in_clear", "found_in_clear", "scan"]

#: Every column that names or locates a person. Forenames and postcodes count as
#: much as surnames: "Alice" with "M1 1AE" can be enough to find someone.
_SCANNED_COLUMNS = ("forename", "surname", "postcode", "nhs_no", "ni_number", "dob", "address_1")
#: Shorter values turn up by chance in binary Avro bytes (a three-letter forename is
#: a 1 in 16 million coincidence per byte), so they are left out, not guessed at.
MIN_NEEDLE = 5
_BASE64 = re.compile(rb"[A-Za-z0-9+/=]")
_PLAIN: Mapping[str, Any] = {}


def behind(bootstrap: str, group: str, prefix: str, client: Mapping[str, Any] = _PLAIN) -> int:
    """Messages of the broker's inputs its group has not committed yet (0: all processed).

    ``client`` is the kafka-python security settings of the demo's own view
    (the cluster admin's on a secured cluster; none on a plaintext one).
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **client)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **client)
    try:
        topics = [
            t
            for t in consumer.topics()
            if t.startswith((f"{prefix}.events.", f"{prefix}.consent."))
            or t == f"{prefix}.broker.routed"
        ]
        partitions = [
            TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
        ]
        ends = consumer.end_offsets(partitions) if partitions else {}
        committed = admin.list_group_offsets({group: None}).get(group, {})
        return sum(
            end - (committed[tp].offset if tp in committed else 0)
            for tp, end in ends.items()
            if end > (committed[tp].offset if tp in committed else 0)
        )
    finally:
        consumer.close()
        admin.close()


def found_in_clear(needle: bytes, haystack: bytes) -> bool:
    """Whether ``needle`` stands in ``haystack`` as a value, not as chance letters.

    Internal topics carry ciphertext as base64 text, where a five-letter surname
    turns up by chance (a demo run once found "Yates" there). A value in clear
    has something other than base64 on at least one side: a quote, a length
    byte, a space.
    """
    for match in re.finditer(re.escape(needle), haystack):
        before = haystack[match.start() - 1 : match.start()]
        after = haystack[match.end() : match.end() + 1]
        if not (_BASE64.fullmatch(before or b"-") and _BASE64.fullmatch(after or b"-")):
            return True
    return False


def clear_values(files: Iterable[Path]) -> set[bytes]:
    """What to look for: each scanned value as written, upper-cased (as the connector
    normalises names), and each postcode also without its space."""
    needles: set[bytes] = set()
    for path in files:
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                for column in _SCANNED_COLUMNS:
                    value = (row.get(column) or "").strip()
                    forms = {value, value.upper()}
                    if column == "postcode":
                        forms.add(value.replace(" ", "").upper())
                    needles |= {f.encode() for f in forms if len(f) >= MIN_NEEDLE}
    return needles


def count_in_clear(needles: Iterable[bytes], haystack: bytes) -> int:
    """How many of ``needles`` stand in ``haystack`` as values (``found_in_clear``)."""
    return sum(1 for n in needles if found_in_clear(n, haystack))


def scan(
    bootstrap: str, prefix: str, files: Iterable[Path], client: Mapping[str, Any] = _PLAIN
) -> tuple[int, int]:
    """(clear values found, topics scanned) over every topic of the run.

    That is every ``<prefix>*`` topic: the federation's and the broker's internal ones.
    """
    needles = clear_values(files)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **client)
    try:
        topics = sorted(t for t in consumer.topics() if t.startswith(prefix))
    finally:
        consumer.close()
    haystack = b"\n".join(
        r.value
        for t in topics
        for r in read_to_end(bootstrap, t, consumer_config=client)
        if r.value is not None
    )
    return count_in_clear(needles, haystack), len(topics)
