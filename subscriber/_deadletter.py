"""The local dead-letter file: what was refused, where it sat, and why; never what it said.

A line names the message's place (topic, partition, offset), the reason code,
and, when the message decoded, its notification and agreement ids. It never
holds the message bytes, a ciphertext, or a value that was opened: whoever
reads it learns which message to look at, not what it disclosed. The stream
goes on past it (issue 11, item 3).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from subscriber._errors import DeliveryStoreError
from subscriber._lines import (
    append_line,
    is_regular,
    last_line,
    open_for_lines,
    reopened_if_moved,
)

__all__ = ["DeadLetter", "DeadLetterFile"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One refused message. ``error_type`` is set for unexpected errors (a bug's class name)."""

    service: str
    topic: str
    partition: int
    offset: int
    reason: str
    notification_id: str | None = None
    agreement_id: str | None = None
    error_type: str | None = None
    at: str = ""


class DeadLetterFile:
    """Appends ``DeadLetter`` lines as JSON, fsynced, to a file created 0600."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            # Unbuffered, cut back on failure, torn tail cut at open (``_lines``):
            # operators' tools read it line by line.
            self._file = open_for_lines(self.path)
            self._last_at_open = self._last_place()
        except OSError as exc:
            raise DeliveryStoreError(f"cannot open the dead-letter file {self.path}") from exc

    def write(self, letter: DeadLetter) -> None:
        """Append ``letter``, unless it repeats the last one written before this process
        started or the last one now: a process killed between a letter and the store's
        commit refuses the same message again on restart."""
        stamped = letter if letter.at else _stamped(letter)
        line = json.dumps(asdict(stamped), sort_keys=True) + "\n"
        try:
            self._file = reopened_if_moved(self._file, self.path)
            if _place(letter) in (self._last_at_open, self._last_place()):
                return
            append_line(self._file, line.encode("utf-8"), path=self.path)
        except OSError as exc:
            raise DeliveryStoreError(f"cannot write the dead-letter file {self.path}") from exc

    def read(self) -> list[DeadLetter]:
        """Every letter written so far (for operators' tools and tests)."""
        with self.path.open(encoding="utf-8") as handle:
            return [DeadLetter(**json.loads(line)) for line in handle if line.strip()]

    def _last_place(self) -> tuple[object, ...] | None:
        if not is_regular(self._file):
            return None
        try:
            return _place(DeadLetter(**json.loads(last_line(self.path))))
        except (ValueError, TypeError):
            return None

    def close(self) -> None:
        self._file.close()


def _place(letter: DeadLetter) -> tuple[object, ...]:
    return (letter.service, letter.topic, letter.partition, letter.offset, letter.reason)


def _stamped(letter: DeadLetter) -> DeadLetter:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return DeadLetter(**{**asdict(letter), "at": now})
