"""The webhook sink against a real local HTTP server: retries, backoff, refusals."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from subscriber import Backoff, HandoverFailed, HandoverRefused, OpenedNotification, WebhookSink
from tests.ports import free_port
from tests.subscriber.webhook_server import Webhook, serve

NOTIFICATION = OpenedNotification(
    notification_id="ntf-1", agreement_id="a", purpose="p", service="s",
    created_at=datetime(2026, 12, 1, tzinfo=UTC), score=1.0, method="exact", events=(),
)  # fmt: skip
QUICK = Backoff(initial=0.01, maximum=0.05, attempts=4)


def _sink(port: int, slept: list[float] | None = None) -> WebhookSink:
    sleeps = slept if slept is not None else []
    return WebhookSink(f"http://127.0.0.1:{port}/hook", backoff=QUICK, sleep=sleeps.append)


def test_5xx_and_429_are_retried_with_growing_waits_then_delivered_once():
    port = free_port()
    slept: list[float] = []
    with serve(port, statuses=[503, 429, 500]) as hook:
        _sink(port, slept).deliver(NOTIFICATION)
    assert hook.answered == [503, 429, 500, 200]
    assert hook.ids() == ["ntf-1"]
    headers = hook.received[0][0]
    assert headers["Idempotency-Key"] == "ntf-1" and headers["Fedbroker-In-Doubt"] == "0"
    assert len(slept) == 3 and all(0 < s <= QUICK.maximum for s in slept)
    assert QUICK.delay(0) <= QUICK.initial and QUICK.delay(10) >= QUICK.maximum / 2


def test_a_webhook_that_stays_down_is_a_retryable_failure_not_a_loss():
    port = free_port()  # nothing listens
    with pytest.raises(HandoverFailed) as caught:
        _sink(port).deliver(NOTIFICATION)
    assert not isinstance(caught.value, HandoverRefused)
    with serve(port, statuses=[502] * 4) as hook, pytest.raises(HandoverFailed):
        _sink(port).deliver(NOTIFICATION)
    assert hook.ids() == []


def test_a_4xx_is_a_refusal_for_good_and_is_not_retried():
    port = free_port()
    with serve(port, statuses=[422]) as hook, pytest.raises(HandoverRefused):
        _sink(port).deliver(NOTIFICATION)
    assert hook.answered == [422]


def test_an_in_doubt_redelivery_says_so():
    port = free_port()
    with serve(port) as hook:
        _sink(port).deliver(NOTIFICATION, in_doubt=True)
    assert hook.received[0][0]["Fedbroker-In-Doubt"] == "1"


def test_only_http_urls_are_accepted():
    with pytest.raises(HandoverRefused):
        WebhookSink("file:///etc/passwd")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_a_delivery_and_is_not_followed(status):
    """Attack round 5: urllib followed a 301/302/303 to a GET without the body and took
    the GET's 200 as the hand-over: the notification was lost, and the service's
    ``Authorization`` header went wherever ``Location`` pointed."""
    port = free_port()
    sink = WebhookSink(
        f"http://127.0.0.1:{port}/hook", backoff=QUICK, sleep=lambda s: None,
        headers={"Authorization": "Bearer service-token"},
    )  # fmt: skip
    with serve(port, statuses=[status] * QUICK.attempts) as hook:
        with pytest.raises(HandoverFailed) as caught:
            sink.deliver(NOTIFICATION)
    assert not isinstance(caught.value, HandoverRefused)  # kept and retried, never lost
    assert caught.value.reason == "webhook-redirected"
    assert hook.fetched == [] and hook.answered == [status] * QUICK.attempts


def _trickle(conn: socket.socket, stop: threading.Event) -> None:
    """A 200 whose header comes a byte every 0.2 s (each read well inside the sink's
    timeout), until ``stop`` or 15 s, so the test ends either way."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    deadline = time.monotonic() + 15
    while not stop.wait(0.2) and time.monotonic() < deadline:
        conn.sendall(b"a")
    conn.sendall(b"\r\nContent-Length: 0\r\n\r\n")


def test_a_webhook_that_answers_a_byte_at_a_time_cannot_hold_a_hand_over_past_its_timeout():
    """Attack round 5: the timeout bounded each socket read, not the request, so a
    webhook trickling its answer a byte a second held the subscriber (deaf to ``stop``)
    for as long as it liked, and its 200 at the end counted."""
    port = free_port()
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", port))

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn, contextlib.suppress(OSError):  # the client hangs up at its deadline
            conn.recv(65536)
            _trickle(conn, stop)

    server = threading.Thread(target=trickle, daemon=True)
    server.start()
    sink = WebhookSink(f"http://127.0.0.1:{port}/hook", timeout=1.0,
                       backoff=Backoff(attempts=1))  # fmt: skip
    started = time.monotonic()
    try:
        with pytest.raises(HandoverFailed):
            sink.deliver(NOTIFICATION)
        took = time.monotonic() - started
    finally:
        stop.set()
        server.join(timeout=10)
        listener.close()
    assert took < 3.0


def test_a_try_after_one_that_got_no_answer_is_marked_in_doubt():
    """Attack round 5: a webhook that took the notification but answered after the
    timeout got it again from the next try marked ``Fedbroker-In-Doubt: 0``: a service
    trusting the header took it twice. No answer is not a no."""
    port = free_port()
    received: list[str] = []
    answer_first = threading.Event()

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            received.append(self.headers["Fedbroker-In-Doubt"])
            if len(received) == 1:
                answer_first.wait(10)  # took it, answers too late
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sink = WebhookSink(f"http://127.0.0.1:{port}/hook", timeout=0.5, backoff=QUICK,
                       sleep=lambda s: None)  # fmt: skip
    try:
        sink.deliver(NOTIFICATION)
    finally:
        answer_first.set()
        server.shutdown()
        server.server_close()
    assert received == ["0", "1"]


def test_a_try_after_a_refused_connection_is_not_in_doubt():
    port = free_port()
    with ExitStack() as stack:
        hooks: list[Webhook] = []

        def listen_now(seconds: float) -> None:  # the webhook comes up between two tries
            hooks.append(stack.enter_context(serve(port)))

        sink = WebhookSink(f"http://127.0.0.1:{port}/hook",
                           backoff=Backoff(initial=0.01, attempts=2), sleep=listen_now)  # fmt: skip
        sink.deliver(NOTIFICATION)  # the first try is refused: it was never sent
        assert [h["Fedbroker-In-Doubt"] for h, _ in hooks[0].received] == ["0"]


def test_the_wait_between_failed_hand_overs_stays_at_its_cap_however_long_the_outage():
    """Attack round 5: the subscriber counts failed hand-overs in a row and asks the
    backoff for that attempt's wait; ``factor ** attempt`` overflowed a float after 1024
    of them (some 8.5 hours of a webhook down, at 30 s each), and the OverflowError
    stopped the subscriber that the docs say waits out an outage of hours."""
    from subscriber import DEFAULT_RETRY_BACKOFF

    for attempt in (1023, 1024, 10**6):
        wait = DEFAULT_RETRY_BACKOFF.delay(attempt)
        assert DEFAULT_RETRY_BACKOFF.maximum / 2 <= wait <= DEFAULT_RETRY_BACKOFF.maximum


@pytest.mark.parametrize("status", [401, 403, 404, 405, 407, 410, 415])
def test_an_answer_about_the_endpoint_not_the_notification_is_retried_not_a_refusal(status):
    """Attack round 5: every 4xx but 408/425/429 was a refusal for good, so an expired
    webhook token (401/403) or a service deployed under a new path (404) turned every
    notification into a dead letter until someone noticed: a whole stream lost to a
    configuration slip. Those answers describe the endpoint; they are retried, the
    offset kept, as for a webhook that is down."""
    port = free_port()
    with serve(port, statuses=[status] * QUICK.attempts) as hook:
        with pytest.raises(HandoverFailed) as caught:
            _sink(port).deliver(NOTIFICATION)
        assert not isinstance(caught.value, HandoverRefused)
        assert caught.value.reason == "webhook-misconfigured"
        _sink(port).deliver(NOTIFICATION)  # put right: it is taken
    assert hook.ids() == ["ntf-1"]


@pytest.mark.parametrize("status", [400, 409, 413, 422])
def test_an_answer_about_the_notification_is_still_a_refusal(status):
    port = free_port()
    with serve(port, statuses=[status]) as hook, pytest.raises(HandoverRefused):
        _sink(port).deliver(NOTIFICATION)
    assert hook.answered == [status]


@contextlib.contextmanager
def _ambient_proxy(monkeypatch) -> Iterator[list[bytes]]:
    """A proxy named in the environment, as a shared host or a careless image sets it:
    it records the first bytes of every connection and answers 200 to each."""
    seen: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    proxy = f"http://127.0.0.1:{listener.getsockname()[1]}"

    def accept() -> None:
        with contextlib.suppress(OSError):  # closed at the end of the test
            while True:
                conn, _ = listener.accept()
                with conn:
                    seen.append(conn.recv(65536))
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy)
    try:
        yield seen
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (close alone does not)
        listener.close()
        thread.join(timeout=10)


def test_a_proxy_in_the_environment_never_sees_a_notification(monkeypatch):
    """Attack: urllib routes through whatever ``HTTP_PROXY`` names, so a proxy set in a
    service's environment (or injected into it) received every notification, sealed
    payload and pseudonymous references, and its 200 counted as the hand-over."""
    port = free_port()
    with _ambient_proxy(monkeypatch) as seen, serve(port) as hook:
        _sink(port).deliver(NOTIFICATION)
    assert seen == []
    assert hook.ids() == ["ntf-1"]


def test_a_proxy_in_the_environment_is_not_asked_to_tunnel_to_an_https_webhook(monkeypatch):
    with _ambient_proxy(monkeypatch) as seen:
        port = free_port()  # nothing listens
        sink = WebhookSink(f"https://127.0.0.1:{port}/hook", backoff=Backoff(attempts=1))
        with pytest.raises(HandoverFailed):  # refused: never sent
            sink.deliver(NOTIFICATION)
    assert seen == []  # no ``CONNECT 127.0.0.1:<port>`` to the proxy


@pytest.mark.parametrize(
    "url",
    [
        "http://revenues.example.internal/fedbroker",
        "http://10.0.0.5:8080/hook",
        "http://localhost.attacker.example/hook",
        "http://127.0.0.1.nip.io/hook",
        "HTTP://revenues.example.internal/hook",
    ],
)
def test_a_webhook_in_clear_is_refused_when_configured(url):
    """Notifications in clear cross a network anyone on it can read: ``http://`` is
    refused when the sink is made (before any notification), except to this host."""
    with pytest.raises(HandoverRefused) as caught:
        WebhookSink(url)
    assert caught.value.reason == "webhook-not-https"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/hook", "http://[::1]:8080/hook", "http://localhost:8080/h"]
)
def test_a_webhook_in_clear_on_this_host_is_allowed(url):
    """A service listening on loopback (a sidecar, the tests and the demo): nothing
    crosses a network."""
    assert WebhookSink(url).url == url


def _self_signed(folder) -> tuple[str, str]:
    """A certificate for 127.0.0.1 that is its own CA, and its key (PEM files)."""
    import ipaddress
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = folder / "webhook.pem", folder / "webhook.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))  # fmt: skip
    return str(cert_file), str(key_file)


@pytest.mark.parametrize("answer", ["prompt", "a byte at a time"])
def test_an_https_webhook_goes_through_the_same_watched_connection(tmp_path, monkeypatch, answer):
    """The HTTPS connection is the HTTP one over TLS, one code path: it delivers, and
    an answer trickled inside TLS is cut at the request's deadline as in clear."""
    import ssl

    cert_file, key_file = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", cert_file)  # the sink's default context trusts it
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()
    requests: list[bytes] = []

    def serve_once() -> None:
        raw, _ = listener.accept()
        with contextlib.suppress(OSError), context.wrap_socket(raw, server_side=True) as conn:
            request = conn.recv(65536)
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            head, _, body = request.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(body) < length:
                body += conn.recv(65536)
            requests.append(head)
            if answer == "prompt":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                return
            _trickle(conn, stop)

    server = threading.Thread(target=serve_once, daemon=True)
    server.start()
    sink = WebhookSink(f"https://127.0.0.1:{port}/hook", timeout=1.0,
                       backoff=Backoff(attempts=1))  # fmt: skip
    started = time.monotonic()
    try:
        if answer == "prompt":
            sink.deliver(NOTIFICATION)
        else:
            with pytest.raises(HandoverFailed):
                sink.deliver(NOTIFICATION)
        took = time.monotonic() - started
    finally:
        stop.set()
        server.join(timeout=10)
        listener.close()
    assert requests and requests[0].startswith(b"POST /hook ")
    assert took < 3.0


def test_the_command_refuses_a_webhook_in_clear_before_it_reads_or_writes_anything(
    federation, tmp_path
):
    """A careless clerk's ``--webhook http://...`` is refused when the command starts,
    before the directory's serial is recorded in the state folder or Kafka is asked."""
    import subprocess
    import sys

    from tests.subscriber.factory import SERVICE

    state = tmp_path / "state"
    result = subprocess.run(
        [sys.executable, "-m", "fedbroker", "subscribe", "--bootstrap", "127.0.0.1:1",
         "--service", SERVICE, "--key", str(federation.keys[SERVICE].sealing.private),
         "--directory", str(federation.directory_path),
         "--trust-anchor", str(federation.trust_anchor), "--state", str(state),
         "--webhook", "http://revenues.example.internal/fedbroker"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "error [webhook-not-https]" in result.stderr
    assert not state.exists()
