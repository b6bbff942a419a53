"""Handing notifications to a webhook: an HTTP POST with retries and exponential backoff.

The body is the notification's JSON; ``Idempotency-Key`` carries its id, so a
service that receives the same id twice can tell. That happens only when a
``2xx`` may have been lost: a crash between it and our store's commit, or a try
that got no answer (a timeout, a dropped connection); the next is then marked
``Fedbroker-In-Doubt: 1``.

2xx is delivered; 408, 429, 5xx and connection failures are retried, then
reported as ``HandoverFailed`` (the subscriber keeps the offset and tries again
later, so a webhook that is down for hours loses nothing). So are 401,
403, 404, 405, 407, 410 and 415, which say the endpoint or its credentials are
wrong, not the notification (``webhook-misconfigured``); any other 4xx is
``HandoverRefused``. A redirect is never followed: urllib turns a POST
redirected by 301/302/303 into a GET without the body, whose 2xx would count as
a hand-over of nothing, and it forwards every header (the service's token) to
wherever ``Location`` points. It is retried as ``webhook-redirected`` until the
URL is put right.

A notification carries sealed payloads and pseudonymous references, so it goes
to the webhook directly and encrypted. ``HTTP_PROXY``, ``HTTPS_PROXY`` and the
like are ignored: a proxy set in a service's environment for other traffic (or
slipped into it) would otherwise receive every notification, and its 200 would
count as the hand-over. ``http://`` is refused when the sink is made
(``webhook-not-https``) unless the host is this one (``localhost``, 127.0.0.0/8,
``::1``: a sidecar, the tests and the demo), where nothing crosses a network.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import random
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.client import HTTPException
from typing import Any

from subscriber._errors import HandoverFailed, HandoverRefused
from subscriber._open import OpenedNotification
from subscriber._sinks import Sink

__all__ = ["DEFAULT_BACKOFF", "DEFAULT_WEBHOOK_TIMEOUT", "Backoff", "WebhookSink"]

log = logging.getLogger(__name__)

DEFAULT_WEBHOOK_TIMEOUT = 10.0
_RETRYABLE = frozenset({408, 425, 429})
# About the endpoint, not the notification: a token expired or refused, a path
# moved, a method or body type it no longer takes. Refused for good, each of these
# would turn every notification into a dead letter until someone noticed.
_MISCONFIGURED = frozenset({401, 403, 404, 405, 407, 410, 415})


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
        try:
            ceiling = min(self.maximum, self.initial * self.factor**attempt)
        except OverflowError:  # ~1024 failures in a row: an outage of hours at the cap
            ceiling = self.maximum
        return random.uniform(ceiling / 2, ceiling)


DEFAULT_BACKOFF = Backoff()


def _never_sent(exc: BaseException) -> bool:
    """The connection was refused or the host not found: the webhook cannot have it."""
    cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(cause, ConnectionRefusedError | socket.gaierror)


def _checked_url(url: str) -> str:
    """``url`` if it is ``https://``, or ``http://`` to this host.

    Raises:
        HandoverRefused: ``bad-url`` (not HTTP, or no host) or ``webhook-not-https``.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HandoverRefused(
            "a webhook URL must be https:// (or http:// to this host)", reason="bad-url"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise HandoverRefused(
            f"the webhook {parts.hostname} would receive notifications in clear: use "
            "https:// (http:// is allowed only to localhost, 127.0.0.0/8 or ::1)",
            reason="webhook-not-https",
        )
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: where it resolves is not ours to vouch for


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


class _Deadline:
    """Bounds a whole request, not each socket read: a webhook answering a byte at a
    time keeps every read inside a per-read timeout, and would hold the hand-over
    (and the subscriber, deaf to ``stop`` meanwhile) for as long as it liked."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # ``expire`` may run in a signal handler
        self._sockets: list[socket.socket] = []
        self._expired = False

    @contextmanager
    def within(self, seconds: float) -> Iterator[None]:
        with self._lock:
            self._sockets, self._expired = [], False
        timer = threading.Timer(seconds, self._expire)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
        with self._lock:
            if self._expired:
                # A cut answer can still parse (a status line, then EOF): never a 2xx.
                raise TimeoutError(f"no whole answer within {seconds} s")

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self._expired:  # it expired while connecting
                _cut(sock)

    def expire(self) -> None:
        """End the request in progress now (``Sink.interrupt``)."""
        self._expire()

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            for sock in self._sockets:
                _cut(sock)


def _cut(sock: socket.socket) -> None:
    # Wakes a read blocked in another thread; it then fails like a dropped connection.
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: the request ended first


class _WatchedConnection(http.client.HTTPConnection):
    """A connection whose socket the request's deadline can cut.

    The HTTPS connection below is this one over ``HTTPSConnection`` (TLS set up
    inside ``super().connect()``), so both schemes connect through this one path.
    """

    def __init__(self, host: str, *, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self._deadline = deadline

    def connect(self) -> None:
        super().connect()
        self._deadline.watch(self.sock)


class _WatchedTLSConnection(_WatchedConnection, http.client.HTTPSConnection):
    """``_WatchedConnection`` over TLS: nothing of its own."""


class _WatchedHandler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    """Opens ``http`` and ``https`` through the watched connections; being both
    handlers, it replaces urllib's default ones."""

    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self._open(_WatchedConnection, req)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self._open(_WatchedTLSConnection, req)

    def _open(
        self, connection: type[_WatchedConnection], req: urllib.request.Request
    ) -> http.client.HTTPResponse:
        return self.do_open(partial(connection, deadline=self._deadline), req)


class WebhookSink(Sink):
    """POSTs each notification to ``url``.

    Args:
        url: an ``https`` URL, or ``http`` to this host (``localhost``, 127.0.0.0/8,
            ``::1``); proxies named in the environment are not used.
        timeout: seconds per request, from connecting to the last byte of the answer
            (default ``DEFAULT_WEBHOOK_TIMEOUT``).
        backoff: retry policy within one hand-over (default ``DEFAULT_BACKOFF``).
        headers: extra headers, e.g. an authorisation token (default none).
        sleep: how to wait between tries (default: a wait that ``interrupt`` ends).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_WEBHOOK_TIMEOUT,
        backoff: Backoff = DEFAULT_BACKOFF,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.url = _checked_url(url)
        self._timeout = timeout
        self._backoff = backoff
        self._headers = dict(headers or {})
        self._interrupted = threading.Event()
        # Re-entrant: ``interrupt`` may run in a signal handler on the thread that
        # holds it (the CLI stops on SIGTERM in the thread that delivers).
        self._busy = threading.RLock()
        self._in_hand = False
        self._sleep = sleep or self._interrupted.wait
        self._deadline = _Deadline()
        # An empty ProxyHandler replaces urllib's default one, which reads the
        # environment's proxies: notifications go to the webhook and nowhere else.
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), _NoRedirect, _WatchedHandler(self._deadline)
        )

    def _post_once(self, body: bytes, headers: Mapping[str, str]) -> int:
        # The scheme was checked in __init__: only http and https reach here.
        request = urllib.request.Request(  # noqa: S310
            self.url, data=body, headers=dict(headers), method="POST"
        )
        with self._deadline.within(self._timeout):
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
        }
        with self._busy:
            self._interrupted.clear()
            self._in_hand = True
        try:
            self._tries(notification, body, headers, in_doubt)
        finally:
            with self._busy:
                self._in_hand = False

    def interrupt(self) -> None:
        with self._busy:
            if self._in_hand:
                self._interrupted.set()
                self._deadline.expire()

    def _tries(
        self,
        notification: OpenedNotification,
        body: bytes,
        headers: dict[str, str],
        in_doubt: bool,
    ) -> None:
        problem, reason = "no attempt made", HandoverFailed.reason
        for attempt in range(self._backoff.attempts):
            if attempt:
                self._sleep(self._backoff.delay(attempt - 1))
            if self._interrupted.is_set():
                problem, reason = "interrupted: the subscriber is stopping", "interrupted"
                break
            headers["Fedbroker-In-Doubt"] = "1" if in_doubt else "0"
            try:
                status = self._post_once(body, headers)
            except (OSError, HTTPException) as exc:
                problem, reason = type(exc).__name__, HandoverFailed.reason
                # No answer is not a no: the webhook may have taken it (a timeout, a
                # dropped connection), unless the request never left.
                in_doubt = in_doubt or not _never_sent(exc)
                continue
            if 200 <= status < 300:
                return
            if 400 <= status < 500 and status not in _RETRYABLE | _MISCONFIGURED:
                raise HandoverRefused(
                    f"webhook refused {notification.notification_id} with HTTP {status}"
                )
            problem = f"HTTP {status}"
            reason = (
                "webhook-redirected" if 300 <= status < 400
                else "webhook-misconfigured" if status in _MISCONFIGURED
                else HandoverFailed.reason
            )  # fmt: skip
        log.warning("webhook did not take %s: %s", notification.notification_id, problem)
        raise HandoverFailed(
            f"webhook did not take {notification.notification_id}: {problem}", reason=reason
        )
