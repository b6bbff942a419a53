"""Where each input partition must be read from next, so that no message is skipped.

Kill -9 tests lost matches and left partitions committed short of their end
(issue 15 item 5). Worker logs showed why: after a rebalance seeks a partition
back to its committed offset C, records fetched *before* the seek are still
being handed out, so Faust's read offset moves past C and it drops the records
it fetches again from C as "already read". The acks then start above C, and
faust-streaming 0.15.3's ``_new_offset`` commits over a hole of exactly one
message (it tests ``min(acked) - committed > 1``, written when the committed
offset meant the last one processed, not the next one to read): one message
lost. A larger hole is never committed: the partition stalls.

``ReadHeads`` is the consumer's memory of the offset each partition must be
read from next. After a seek it recognises the record at that offset when it
arrives (so the consumer can make Faust take it), and it tells the committer
when the acks do not start at the committed offset, so the partition is read
again from there instead of being skipped. Pure bookkeeping:
``broker._consumer`` does the seeking.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["MAX_REREADS", "ReadHeads"]

#: Reads of a partition from the same head before its hole is taken for offsets
#: that hold no record (the consumer then passes over them, logging an error).
MAX_REREADS = 5

P = TypeVar("P")


@dataclass
class ReadHeads(Generic[P]):
    """Per partition: the offset a seek went to, until it arrives, and where commits start."""

    _awaited: dict[P, int] = field(default_factory=dict)
    _start: dict[P, int] = field(default_factory=dict)
    _rereads: dict[P, tuple[int, int]] = field(default_factory=dict)

    def sought(self, partition: P, offset: int) -> None:
        """The consumer was sent to ``offset``: read from there, commit from there."""
        self._awaited[partition] = offset
        self._start[partition] = offset

    def awaited(self, partition: P) -> int | None:
        """The offset a seek sent ``partition`` to, while its record has not arrived."""
        return self._awaited.get(partition)

    def arrived(self, partition: P, offset: int) -> bool:
        """Whether this fetched record is the awaited head (then no longer awaited).

        Records fetched before the seek still pass (they are read again after
        the head); only the head is special: Faust must not drop it.
        """
        if self._awaited.get(partition) != offset:
            return False
        del self._awaited[partition]
        return True

    def committed(self, partition: P, offset: int) -> None:
        """Kafka accepted ``offset``: commits continue from it."""
        self._start[partition] = offset

    def skipped(self, partition: P, acked: Collection[int]) -> int | None:
        """The offset to read again from, if the acks do not start where commits do."""
        start = self._start.get(partition)
        if start is None or not acked or min(acked) <= start:
            return None
        return start

    def reread(self, partition: P, head: int) -> bool:
        """Whether to read ``partition`` again from ``head``: at most ``MAX_REREADS`` times."""
        last, count = self._rereads.get(partition, (head, 0))
        count = count + 1 if last == head else 1
        self._rereads[partition] = (head, count)
        return count <= MAX_REREADS

    def forget(self, partitions: Iterable[P]) -> None:
        """Partitions revoked: what was known of them no longer holds."""
        for partition in partitions:
            self._awaited.pop(partition, None)
            self._start.pop(partition, None)
            self._rereads.pop(partition, None)
