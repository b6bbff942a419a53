"""Where a checked notification is handed over: a Python callback or a JSON Lines file.

A sink either returns (the service has it), raises ``HandoverFailed`` (not now:
retried with backoff, the offset kept) or ``HandoverRefused`` (never: dead-
lettered). Any other exception is a bug in the sink; the subscriber retries it
a bounded number of times, counted across restarts, then dead-letters it.

``confirm`` answers the one question a crash leaves open: did the hand-over of
this id finish before the process died? A sink that can tell (the JSON Lines
file can) makes delivery exactly once; one that cannot returns None and the
notification is handed over again with ``in_doubt=True``.
"""

from __future__ import annotations

import io
import json
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from subscriber._errors import HandoverFailed
from subscriber._lines import (
    append_line,
    is_regular,
    last_line,
    open_for_lines,
    reopened_if_moved,
)
from subscriber._open import OpenedNotification

__all__ = ["CallbackSink", "JsonLinesSink", "Sink"]


class Sink(ABC):
    """Hands a notification to the service."""

    @abstractmethod
    def deliver(self, notification: OpenedNotification, *, in_doubt: bool = False) -> None:
        """Hand it over; return only once the service has it durably."""

    def confirm(self, notification_id: str) -> bool | None:
        """Whether this id was handed over before a crash (None: cannot tell)."""
        return None

    def interrupt(self) -> None:  # noqa: B027 - most sinks return quickly
        """Give up a hand-over in progress, from another thread: the subscriber is
        stopping. ``deliver`` then raises ``HandoverFailed`` as soon as it can, so the
        stop is not held past a supervisor's grace period (whose kill would count
        as a death on the message). Does nothing between hand-overs."""

    def close(self) -> None:  # noqa: B027 - most sinks hold nothing
        """Release what the sink holds."""


class CallbackSink(Sink):
    """Calls ``callback(notification)``; ``confirm`` may answer the in-doubt question.

    Args:
        callback: the service's function; raise ``HandoverFailed`` to be retried.
        confirm: returns whether an id was taken before a crash (default None:
            an in-doubt notification is handed over again).
    """

    def __init__(
        self,
        callback: Callable[[OpenedNotification], None],
        *,
        confirm: Callable[[str], bool | None] | None = None,
    ) -> None:
        self._callback = callback
        self._confirm = confirm

    def deliver(self, notification: OpenedNotification, *, in_doubt: bool = False) -> None:
        self._callback(notification)

    def confirm(self, notification_id: str) -> bool | None:
        return None if self._confirm is None else self._confirm(notification_id)


class JsonLinesSink(Sink):
    """Appends one JSON object per line, flushed and fsynced before ``deliver`` returns.

    ``-`` writes to standard output, and a pipe (``/dev/stdout`` in a container)
    is written as it is; for both, ``confirm`` cannot tell. The file is
    created 0600: it holds opened personal data. A line torn by a crash is cut
    off when the file is opened again, so every line is whole.

    The id on the last line at open is kept for ``confirm``: after a restart,
    another partition's notification may be appended before the one in doubt
    is read again, and then the in-doubt line is no longer the last.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = None if str(path) == "-" else Path(path)
        self._file: io.FileIO | None = None
        self._regular = False  # a pipe or stdout: nothing to read back
        self._last_at_open: str | None = None
        if self.path is None:
            return
        try:
            # Unbuffered, cut back on failure, torn tail cut at open (``_lines``).
            self._file = open_for_lines(self.path)
            self._regular = is_regular(self._file)
            if self._regular:
                self._last_at_open = self._last_id()
        except OSError as exc:
            raise HandoverFailed(f"cannot open {self.path}") from exc

    def deliver(self, notification: OpenedNotification, *, in_doubt: bool = False) -> None:
        document = notification.to_json()
        if in_doubt:  # a reader that cannot be asked (stdout, a pipe) can still tell
            document["in_doubt"] = True
        line = json.dumps(document, sort_keys=True, ensure_ascii=False) + "\n"
        if self.path is None:
            try:
                sys.stdout.write(line)
                sys.stdout.flush()
            except OSError as exc:
                raise HandoverFailed("cannot write to stdout") from exc
            return
        assert self._file is not None  # opened with the path
        try:
            self._file = reopened_if_moved(self._file, self.path)
            append_line(self._file, line.encode("utf-8"), path=self.path)
        except OSError as exc:
            raise HandoverFailed(f"cannot write to {self.path}") from exc

    def confirm(self, notification_id: str) -> bool | None:
        """Only the last line before the crash can be in doubt: hand-overs are one at a
        time, and the crash ended the process that wrote it. A hand-over that failed in
        this process is in doubt too, and is then the current last line, if anywhere."""
        if not self._regular:
            return None
        return notification_id in (self._last_at_open, self._last_id())

    def _last_id(self) -> str | None:
        assert self.path is not None
        line = last_line(self.path)
        if not line:
            return None
        try:
            found = json.loads(line).get("notification_id")
        except (ValueError, AttributeError):
            return None
        return found if isinstance(found, str) else None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
