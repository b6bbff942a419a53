"""A local webhook for tests: records what it was sent, answers as scripted."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Webhook:
    """What the server received; ``statuses`` are answered in turn, then 200.

    A 3xx answer points ``Location`` at ``/moved``; a GET there is answered 200
    and recorded in ``fetched`` (what a client that follows redirects does).
    """

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    fetched: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ids(self) -> list[str]:
        with self.lock:
            return [body["notification_id"] for _, body in self.received]


@contextmanager
def serve(port: int, statuses: Sequence[int] = ()) -> Iterator[Webhook]:
    hook = Webhook(statuses=list(statuses))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with hook.lock:
                status = hook.statuses.pop(0) if hook.statuses else 200
                hook.answered.append(status)
                if status == 200:
                    hook.received.append((dict(self.headers), body))
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "/moved")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            with hook.lock:
                hook.fetched.append(dict(self.headers))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
