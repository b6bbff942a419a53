"""Handing notifications to a webhook: an HTTP POST with retries and exponential backoff.

The body is the notification's JSON; ``Idempotency-Key`` carries its id, so a
service that receives the same id twice (possible only after a crash between
its ``2xx`` and our store's commit, and then marked ``Fedbroker-In-Doubt: 1``)
can tell. 2xx is delivered; 408, 429, 5xx and connection failures are retried,
then reported as ``HandoverFailed`` (the subscriber keeps the offset and tries
again later, so a webhook that is down for hours loses nothing); any other 4xx
is ``HandoverRefused``. A redirect is never followed: urllib turns a POST
redirected by 301/302/303 into a GET without the body, whose 2xx would count as
a hand-over of nothing, and it forwards every header (the service's token) to
wherever ``Location`` points. It is retried as ``webhook-redirected`` until the
URL is put right.
"""

from __future__ import annotations

import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.client import HTTPException

from subscriber._errors import HandoverFailed, HandoverRefused
from subscriber._open import OpenedNotification
from subscriber._sinks import Sink

__all__ = ["DEFAULT_BACKOFF", "DEFAULT_WEBHOOK_TIMEOUT", "Backoff", "WebhookSink"]

log = logging.getLogger(__name__)

DEFAULT_WEBHOOK_TIMEOUT = 10.0
_RETRYABLE = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits up to ``initial * factor**n``.

    Args:
        initial: first wait in seconds (default 0.2).
        factor: growth per attempt (default 2).
        maximum: cap on one wait in seconds (default 30).
        attempts: tries per hand-over before ``HandoverFailed`` (default 5).
    """

    initial: float = 0.2
    factor: float = 2.0
    maximum: float = 30.0
    attempts: int = 5

    def delay(self, attempt: int) -> float:
        """The wait before retry ``attempt`` (0-based)."""
        ceiling = min(self.maximum, self.initial * self.factor**attempt)
        return random.uniform(ceiling / 2, ceiling)


DEFAULT_BACKOFF = Backoff()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


class WebhookSink(Sink):
    """POSTs each notification to ``url``.

    Args:
        url: an ``http`` or ``https`` URL.
        timeout: seconds per request (default ``DEFAULT_WEBHOOK_TIMEOUT``).
        backoff: retry policy within one hand-over (default ``DEFAULT_BACKOFF``).
        headers: extra headers, e.g. an authorisation token (default none).
        sleep: how to wait between tries (default ``time.sleep``).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_WEBHOOK_TIMEOUT,
        backoff: Backoff = DEFAULT_BACKOFF,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise HandoverRefused("a webhook URL must be http:// or https://", reason="bad-url")
        self.url = url
        self._timeout = timeout
        self._backoff = backoff
        self._headers = dict(headers or {})
        self._sleep = sleep
        self._opener = urllib.request.build_opener(_NoRedirect)

    def _post_once(self, body: bytes, headers: Mapping[str, str]) -> int:
        # The scheme was checked in __init__: only http and https reach here.
        request = urllib.request.Request(  # noqa: S310
            self.url, data=body, headers=dict(headers), method="POST"
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def deliver(self, notification: OpenedNotification, *, in_doubt: bool = False) -> None:
        body = json.dumps(notification.to_json(), sort_keys=True).encode("utf-8")
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            "Idempotency-Key": notification.notification_id,
            "Fedbroker-In-Doubt": "1" if in_doubt else "0",
        }
        problem, reason = "no attempt made", HandoverFailed.reason
        for attempt in range(self._backoff.attempts):
            if attempt:
                self._sleep(self._backoff.delay(attempt - 1))
            try:
                status = self._post_once(body, headers)
            except (OSError, HTTPException) as exc:
                problem, reason = type(exc).__name__, HandoverFailed.reason
                continue
            if 200 <= status < 300:
                return
            if 400 <= status < 500 and status not in _RETRYABLE:
                raise HandoverRefused(
                    f"webhook refused {notification.notification_id} with HTTP {status}"
                )
            problem = f"HTTP {status}"
            reason = "webhook-redirected" if 300 <= status < 400 else HandoverFailed.reason
        log.warning("webhook did not take %s: %s", notification.notification_id, problem)
        raise HandoverFailed(
            f"webhook did not take {notification.notification_id}: {problem}", reason=reason
        )
