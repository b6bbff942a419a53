"""The broker's Faust table: one store read per lookup, and a changelog not yet in the
metadata is not a partition mismatch.

**One read.** ``faust.Table.get`` is ``Mapping.get`` over Faust's user dict,
whose ``__getitem__`` asks the store whether it holds the key and then reads
it: two RocksDB reads for every token state, sighting row and consent entry
the match agent looks up (the store lookups were 14% of its time draining a
backlog, half of them the membership test). ``get`` here reads once; the
store raises ``KeyError`` for a key it does not hold.

**Unknown partitions.** Before its first write from a source topic, a Faust
table checks that the source has as many partitions as its changelog topic
(``PartitionsMismatch`` otherwise). It reads both counts from aiokafka's
group-coordinator snapshot, which records a topic it has no metadata for yet
as 0 partitions. A worker that starts on a fresh cluster, as its changelog
topics are being created, therefore saw "3 partitions against 0" and refused
every routed batch it handled in its first seconds: each was retried three
times and quarantined as ``internal-error``, and its matches were lost (seen
in a CI rehearsal of ``test_app_e2e``). Here 0 means "not known yet": the
write goes on (Faust picks the changelog partition from the message, not from
the count) and the check is made again on a later write, when the snapshot
knows the topic; a real mismatch is still refused then.
"""

from __future__ import annotations

from typing import Any

import faust

__all__ = ["BrokerTable"]


class BrokerTable(faust.Table[Any, Any]):
    """``faust.Table`` reading once per lookup, checking partition counts once both are known."""

    def get(self, key: Any, default: Any = None) -> Any:
        self.on_key_get(key)
        try:
            return self.data[key]
        except KeyError:
            return self.default() if self.default is not None else default

    def _verify_source_topic_partitions(self, source_topic: str) -> None:
        consumer: Any = self.app.consumer
        if not consumer.topic_partitions(self.changelog_topic_name):
            return  # not in the metadata yet: checked again on the next write
        super()._verify_source_topic_partitions(source_topic)
