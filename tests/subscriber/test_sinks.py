"""The JSON Lines sink as a crashing machine and a full disk leave it: every line whole, once."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from subscriber import HandoverFailed, JsonLinesSink, OpenedNotification
from tests.subscriber.conftest import disk_full_after


def _notification(n: int) -> OpenedNotification:
    return OpenedNotification(
        notification_id=f"ntf-{n}", agreement_id="a", purpose="p", service="s",
        created_at=datetime(2026, 12, 1, tzinfo=UTC), score=1.0, method="exact", events=(),
        fields={"evt-1": {"family_name": "x" * 500}},
    )  # fmt: skip


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["notification_id"] for line in path.read_text().splitlines()]


def test_a_write_cut_short_by_a_full_disk_leaves_no_fragment_and_no_second_copy(tmp_path):
    """Attack round 5: a line cut short by a full disk stayed in the file and the rest of
    it stayed in the write buffer; once space was back, the retried hand-over wrote the
    buffered rest and then the whole line again: the notification was in the file twice."""
    out = tmp_path / "out.jsonl"
    sink = JsonLinesSink(out)
    sink.deliver(_notification(1))
    with disk_full_after(100, out), pytest.raises(HandoverFailed):
        sink.deliver(_notification(2))
    assert _ids(out) == ["ntf-1"]  # nothing of the failed line is left
    assert sink.confirm("ntf-2") is False
    sink.deliver(_notification(2))  # space is back: the subscriber retries the same one
    sink.close()
    assert _ids(out) == ["ntf-1", "ntf-2"]
    assert os.stat(out).st_mode & 0o777 == 0o600


def test_a_torn_line_longer_than_one_read_is_cut_back_to_the_last_whole_line(tmp_path):
    out = tmp_path / "out.jsonl"
    whole = json.dumps({"notification_id": "ntf-0", "pad": "y" * 100_000}) + "\n"
    out.write_text(whole * 3 + '{"notification_id": "ntf-torn", "pad": "' + "z" * 200_000)
    sink = JsonLinesSink(out)
    sink.deliver(_notification(1))
    sink.close()
    assert _ids(out) == ["ntf-0"] * 3 + ["ntf-1"]


def test_a_sink_closed_under_a_hand_over_never_writes_into_a_file_opened_since(tmp_path):
    """The file's descriptor number is free again once closed: writing through a bare
    number would put opened personal data into whatever file was opened next."""
    out, other = tmp_path / "out.jsonl", tmp_path / "other.txt"
    sink = JsonLinesSink(out)
    sink.close()
    with other.open("wb") as unrelated:
        with pytest.raises((ValueError, OSError)):
            sink.deliver(_notification(1))
        unrelated.flush()
    assert other.read_bytes() == b"" and out.read_bytes() == b""


def test_a_line_longer_than_a_mebibyte_in_doubt_is_still_found(tmp_path):
    """Attack round 5: ``confirm`` read only the file's last MiB, so a larger line (many
    events or long fields) did not parse, read as "not handed over", and was written
    again after a crash."""
    out = tmp_path / "out.jsonl"
    big = OpenedNotification(
        notification_id="ntf-big", agreement_id="a", purpose="p", service="s",
        created_at=datetime(2026, 12, 1, tzinfo=UTC), score=1.0, method="exact", events=(),
        fields={"evt-1": {"notes": "n" * (3 << 19)}},
    )  # fmt: skip
    JsonLinesSink(out).deliver(big)  # then the crash, before the store's commit
    assert JsonLinesSink(out).confirm("ntf-big") is True


def test_a_pipe_such_as_dev_stdout_is_written_to_like_standard_output(tmp_path):
    """Attack round 5: ``--jsonl /dev/stdout`` in a container (stdout a pipe) could not
    start: the sink opened the pipe to look for a torn last line, which a pipe does not
    have ("cannot open"), and fsync fails on one. A pipe is written like ``-``: lines
    whole, nothing to cut, and ``confirm`` cannot tell."""
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    lines: list[bytes] = []

    def read() -> None:
        with fifo.open("rb") as pipe:  # opens once the sink opens the other end
            lines.extend(pipe)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    made: list[JsonLinesSink] = []
    opener = threading.Thread(target=lambda: made.append(JsonLinesSink(fifo)), daemon=True)
    opener.start()
    opener.join(timeout=10)
    assert made, "opening the sink on a pipe hung"
    sink = made[0]
    sink.deliver(_notification(1))
    assert sink.confirm("ntf-1") is None
    sink.close()
    reader.join(timeout=10)
    assert [json.loads(line)["notification_id"] for line in lines] == ["ntf-1"]


def test_a_notification_handed_over_again_in_doubt_says_so_on_standard_output(capsys):
    """Attack round 5: after a crash in the hand-over window, a JSON Lines sink that
    cannot look back (standard output, a pipe) got the notification again exactly as
    the first time, where a callback gets ``in_doubt=True`` and a webhook
    ``Fedbroker-In-Doubt: 1``: whatever read the lines could not tell a repeat."""
    sink = JsonLinesSink("-")
    sink.deliver(_notification(1))
    sink.deliver(_notification(1), in_doubt=True)
    first, again = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert "in_doubt" not in first  # the line's format is unchanged when not in doubt
    assert again["in_doubt"] is True and again["notification_id"] == "ntf-1"


@pytest.mark.parametrize("how", ["deleted", "rotated"])
def test_a_file_deleted_or_rotated_under_a_running_sink_is_made_again(tmp_path, how):
    """Attack round 5: an operator deleted the file "to clear it", or logrotate moved it
    aside, while the subscriber ran; every notification after that went into the
    unlinked or moved file, the store recorded each as handed over, and the service,
    reading the path it was given, never saw them."""
    out = tmp_path / "out.jsonl"
    sink = JsonLinesSink(out)
    sink.deliver(_notification(1))
    if how == "deleted":
        out.unlink()
    else:
        out.rename(tmp_path / "out.jsonl.1")
    sink.deliver(_notification(2))
    sink.close()
    assert _ids(out) == ["ntf-2"]
    assert os.stat(out).st_mode & 0o777 == 0o600
    if how == "rotated":
        assert _ids(tmp_path / "out.jsonl.1") == ["ntf-1"]
