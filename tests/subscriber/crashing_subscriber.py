"""A subscriber process that dies by SIGKILL right after its N-th hand-over,
or (``die_on``) whenever it is about to hand over one notification id.

After the N-th hand-over the line is in the file, fsynced, and neither the
store nor Kafka has been told: the worst moment to die. ``die_on`` is a poison
message that kills the process each time, which no ``except`` can see. Run as
``python -m tests.subscriber.crashing_subscriber CONFIG_JSON``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from consent import load_directory, load_private_key
from subscriber import JsonLinesSink, OpenedNotification, Subscriber, SubscriberSettings


class DiesAfter(JsonLinesSink):
    def __init__(self, path: Path, count: int, die_on: str | None) -> None:
        super().__init__(path)
        self._left = count
        self._die_on = die_on

    def deliver(self, notification: OpenedNotification, *, in_doubt: bool = False) -> None:
        if notification.notification_id == self._die_on:
            os.kill(os.getpid(), signal.SIGKILL)
        super().deliver(notification, in_doubt=in_doubt)
        self._left -= 1
        if self._left == 0:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    config = json.loads(sys.argv[1])
    state = Path(config["state"])
    settings = SubscriberSettings(
        bootstrap=config["bootstrap"], service=config["service"], topic=config["topic"],
        group=config["group"], store=state / "delivered.sqlite",
        dead_letters=state / "dead-letters.jsonl", poll_timeout=0.2,
    )  # fmt: skip
    directory = load_directory(
        config["directory"], trust_anchor=config["trust_anchor"], now=datetime.now(UTC)
    )
    key = load_private_key(config["key"])
    sink = DiesAfter(Path(config["out"]), int(config.get("die_after", 0)), config.get("die_on"))
    with Subscriber(settings, directory=directory, key=key, sink=sink) as running:  # type: ignore[arg-type]
        running.run(idle_timeout=60)
    sys.exit(3)  # never reached when the kill works


if __name__ == "__main__":
    main()
