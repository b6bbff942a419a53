"""A webhook on 127.0.0.1 standing in for a service's own endpoint.

It keeps what the demo needs to check delivery (notification id, agreement,
event references, arrival time) and drops the opened fields at once: the
demo's own memory and files hold no personal data.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fedbroker._demo._truth import Delivery

__all__ = ["WebhookReceiver", "delivery_from_json"]

logger = logging.getLogger(__name__)


def delivery_from_json(document: dict[str, Any]) -> Delivery:
    """The checkable part of one handed-over notification (``OpenedNotification.to_json``)."""
    return Delivery(
        service=str(document["service"]),
        notification_id=str(document["notification_id"]),
        agreement_id=str(document["agreement"]),
        refs=tuple((str(e["council"]), str(e["source_ref"])) for e in document["events"]),
    )


class WebhookReceiver:
    """Serves POSTs on an ephemeral port; ``take`` returns what arrived since the last call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrived: list[tuple[float, Delivery]] = []
        receiver = self

        class _Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server protocol
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    delivery = delivery_from_json(json.loads(self.rfile.read(length)))
                except (ValueError, KeyError, TypeError):
                    self.send_response(400)
                    self.end_headers()
                    return
                with receiver._lock:  # noqa: SLF001 - the receiver's own handler
                    receiver._arrived.append((time.time(), delivery))  # noqa: SLF001
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return  # request lines would clutter the live view

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/notifications"

    def start(self) -> None:
        self._thread.start()

    def take(self) -> list[tuple[float, Delivery]]:
        with self._lock:
            taken, self._arrived = self._arrived, []
        return taken

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
