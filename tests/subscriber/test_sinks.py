"""The JSON Lines sink as a crashing machine and a full disk leave it: every line whole, once."""

from __future__ import annotations

import json
import os
import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from subscriber import HandoverFailed, JsonLinesSink, OpenedNotification


def _notification(n: int) -> OpenedNotification:
    return OpenedNotification(
        notification_id=f"ntf-{n}", agreement_id="a", purpose="p", service="s",
        created_at=datetime(2026, 12, 1, tzinfo=UTC), score=1.0, method="exact", events=(),
        fields={"evt-1": {"family_name": "x" * 500}},
    )  # fmt: skip


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["notification_id"] for line in path.read_text().splitlines()]


@contextmanager
def _disk_full_after(extra: int, path: Path) -> Iterator[None]:
    """Files of this process cannot grow past ``path``'s size plus ``extra`` bytes: a
    write beyond fails with EFBIG after writing what fits, as on a disk that fills up."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_write_cut_short_by_a_full_disk_leaves_no_fragment_and_no_second_copy(tmp_path):
    """Attack round 5: a line cut short by a full disk stayed in the file and the rest of
    it stayed in the write buffer; once space was back, the retried hand-over wrote the
    buffered rest and then the whole line again: the notification was in the file twice."""
    out = tmp_path / "out.jsonl"
    sink = JsonLinesSink(out)
    sink.deliver(_notification(1))
    with _disk_full_after(100, out), pytest.raises(HandoverFailed):
        sink.deliver(_notification(2))
    assert _ids(out) == ["ntf-1"]  # nothing of the failed line is left
    assert sink.confirm("ntf-2") is False
    sink.deliver(_notification(2))  # space is back: the subscriber retries the same one
    sink.close()
    assert _ids(out) == ["ntf-1", "ntf-2"]
    assert os.stat(out).st_mode & 0o777 == 0o600
