"""End to end: ``TRAKKR_WEBHOOKS_TIMEOUT`` bounds the whole attempt, and echoed secrets are redacted.

Real worker processes, real Redis, and receivers on 127.0.0.1 that misbehave on purpose:
:class:`Trickler` is a raw-socket HTTP server that trickles its status line, its headers or
its body one piece a second, streams a body without end, or echoes the request back.
Every wait is bounded; every server thread stops with its server.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from e2e.conftest import wait_until
from e2e.helpers import deliveries, emit, make_webhook
from e2e.receiver import Reply

pytestmark = pytest.mark.e2e

#: Seconds an attempt may take in these tests.
TIMEOUT = 2.0
#: How far past TIMEOUT an attempt may end (the issue's bound).
MARGIN = 0.5

STATUS = "status"  #: the status line (and the rest) one byte a second
HEADERS = "headers"  #: the status line, then one header line a second, for ever
BODY = "body"  #: status and headers at once, then the body one byte a second
HUGE = "huge"  #: a body of 10 GB (announced), streamed as fast as the client reads
ECHO = "echo"  #: 200 at once, echoing the request headers and body (as JSON and as headers)
OK = "ok"  #: 200 "ok" at once
MODES = (STATUS, HEADERS, BODY, HUGE, ECHO, OK)

_OK_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Connection:
    """One connection the :class:`Trickler` accepted."""

    opened: float  #: time.monotonic()
    requests: int = 0
    #: When the server saw the client go (a failed send or an end of stream), else None.
    closed: float | None = None
    modes: list[str] = field(default_factory=list)


class Trickler:
    """``with Trickler(STATUS, then=OK, times=1) as rx``: a raw HTTP/1.1 server on 127.0.0.1.

    The first ``times`` requests get ``mode``'s answer, later ones ``then``'s. Keep-alive
    is honoured for answers that complete. ``interval``: seconds between trickled pieces;
    ``extra``: more names and values ECHO answers with; ``tls``: serve HTTPS with this context.
    """

    def __init__(
        self,
        mode: str,
        *,
        then: str | None = None,
        times: int | None = None,
        interval: float = 1.0,
        extra: dict[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        assert mode in MODES and (then is None or then in MODES)
        self.mode, self.then, self.times, self.interval = mode, then, times, interval
        self.extra = extra or {}  # what ECHO adds (a receiver that knows the signing secret, say)
        self.tls = tls
        self.connections: list[Connection] = []
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self._threads: list[threading.Thread] = []
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"

    def __enter__(self) -> Trickler:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(5)
        self._server.close()

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            record = Connection(opened=time.monotonic())
            with self._lock:
                self.connections.append(record)
            self._spawn(self._serve, conn, record)

    def _next_mode(self) -> str:
        with self._lock:
            count = len(self.requests)
        if self.times is not None and count > self.times and self.then is not None:
            return self.then
        return self.mode

    def _serve(self, conn: socket.socket, record: Connection) -> None:
        buffer = b""
        try:
            if self.tls is not None:
                conn.settimeout(5)
                conn = self.tls.wrap_socket(conn, server_side=True)
            conn.settimeout(0.2)
            while not self._stop.is_set():
                request, buffer = self._read_request(conn, buffer)
                if request is None:
                    break
                with self._lock:
                    self.requests.append(request)
                record.requests += 1
                mode = self._next_mode()
                record.modes.append(mode)
                if not self._answer(conn, mode, request):
                    break
        except OSError:
            pass
        finally:
            record.closed = time.monotonic()
            conn.close()

    def _read_request(self, conn: socket.socket, buffer: bytes) -> tuple[dict[str, Any] | None, bytes]:
        deadline = time.monotonic() + 30
        while b"\r\n\r\n" not in buffer:
            if self._stop.is_set() or time.monotonic() > deadline:
                return None, buffer
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return None, buffer
            buffer += data
        head, _, rest = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), "0"))
        while len(rest) < length:
            if self._stop.is_set() or time.monotonic() > deadline:
                return None, b""
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return None, b""
            rest += data
        request = {"at": time.monotonic(), "line": lines[0], "headers": headers, "body": rest[:length].decode()}
        return request, rest[length:]

    def _trickle(self, conn: socket.socket, pieces: list[bytes]) -> bool:
        for piece in pieces:
            conn.sendall(piece)
            if not self._pause(conn):
                return False
        return True

    def _pause(self, conn: socket.socket) -> bool:
        """Wait ``interval``; False as soon as the client hangs up (or the server stops)."""
        if isinstance(conn, ssl.SSLSocket):  # no MSG_PEEK on TLS: a failed send tells instead
            return not self._stop.wait(self.interval)
        until = time.monotonic() + self.interval
        while (left := until - time.monotonic()) > 0:
            readable, _, _ = select.select([conn], [], [], min(left, 0.05))
            if self._stop.is_set():
                return False
            if readable:
                try:
                    if not conn.recv(1, socket.MSG_PEEK):
                        return False  # the client closed its end
                except OSError:
                    return False
                time.sleep(max(0.0, min(left, 0.05)))
        return True

    def _answer(self, conn: socket.socket, mode: str, request: dict[str, Any]) -> bool:
        """Send one answer; False when the connection is done with."""
        if mode == OK:
            conn.sendall(_OK_ANSWER)
            return True
        if mode == STATUS:  # every byte of the answer, one a second
            return self._trickle(conn, [bytes([b]) for b in _OK_ANSWER])
        if mode == HEADERS:
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            self._trickle(conn, [b"X-Slow-%d: x\r\n" % i for i in range(120)])
            return False
        if mode == BODY:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 120\r\n\r\n")
            return self._trickle(conn, [b"x"] * 120)
        if mode == HUGE:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10000000000\r\n\r\n")
            chunk = b"y" * 65536
            deadline = time.monotonic() + 30
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    conn.sendall(chunk)
                except TimeoutError:
                    continue
            return False
        # ECHO: the request's headers as a JSON body and back as response headers.
        body = json.dumps({"headers": request["headers"], "body": request["body"], "extra": self.extra}).encode()
        echoed = "".join(f"X-Echo-{k}: {v}\r\n" for k, v in {**request["headers"], **self.extra}.items())
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + echoed.encode("latin-1")
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        return True


@pytest.fixture
def trickler() -> Iterator[Any]:
    """``trickler(mode, **kwargs)``: a started :class:`Trickler`, stopped after the test."""
    made: list[Trickler] = []

    def start(mode: str, **kwargs: Any) -> Trickler:
        server = Trickler(mode, **kwargs).__enter__()
        made.append(server)
        return server

    yield start
    for server in made:
        server.__exit__(None, None, None)


def _finished(app: Any, event_id: str, attempts: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        found = deliveries(app, event_id)
        if found and found[0]["status"] in ("succeeded", "failed") and len(found[0]["attempts"]) >= attempts:
            return found[0]
        return None

    result: dict[str, Any] = wait_until(done, 40, f"delivery of {event_id} to finish")
    return result


@pytest.mark.parametrize("mode", [STATUS, HEADERS, BODY])
def test_a_trickling_receiver_is_timed_out_at_the_timeout_and_retried(
    e2e_app, start_worker, trickler, mode, record_property
):
    rx = trickler(mode, then=OK, times=1)
    app = e2e_app(TRAKKR_WEBHOOKS_TIMEOUT=TIMEOUT, TRAKKR_WEBHOOKS_RETRY_DELAYS=[0.5, 1, 2])
    make_webhook(app, rx.url + "/hooks")
    start_worker(app)
    event_id = emit(app)

    delivery = _finished(app, event_id, 2)
    first, second = delivery["attempts"]
    record_property(f"{mode}_trickle_attempt_ms", first["duration_ms"])
    print(f"trickled {mode}: the attempt took {first['duration_ms']:.0f} ms (TIMEOUT {TIMEOUT:g} s)")
    assert first["outcome"] == "retry" and first["status_code"] is None
    assert first["error_type"] in ("ReadTimeout", "ConnectTimeout", "Timeout")
    assert (TIMEOUT - 0.05) * 1000 <= first["duration_ms"] < (TIMEOUT + MARGIN) * 1000
    assert second["status_code"] == 200 and second["outcome"] == "succeeded"
    assert delivery["status"] == "succeeded" and delivery["attempt_count"] == 2
    # The worker let go of the trickling connection at the deadline too.
    trickled = rx.connections[0]
    assert trickled.modes[0] == mode
    wait_until(lambda: trickled.closed, 10, "the trickled connection to be closed")
    assert trickled.closed is not None and trickled.closed - trickled.opened < TIMEOUT + MARGIN + 0.5


def test_a_receiver_trickling_every_time_fails_after_the_last_retry_each_attempt_bounded(
    e2e_app, start_worker, trickler
):
    rx = trickler(HEADERS)
    app = e2e_app(TRAKKR_WEBHOOKS_TIMEOUT=1, TRAKKR_WEBHOOKS_RETRY_DELAYS=[0.2, 0.2])
    make_webhook(app, rx.url + "/hooks")
    start_worker(app)
    event_id = emit(app)

    delivery = _finished(app, event_id, 3)
    assert delivery["status"] == "failed" and delivery["attempt_count"] == 3
    assert [a["outcome"] for a in delivery["attempts"]] == ["retry", "retry", "failed"]
    assert all(a["status_code"] is None and 950 <= a["duration_ms"] < 1500 for a in delivery["attempts"])
    assert "gave up after 3 attempts" in delivery["last_error"] or "timeout" in (delivery["last_error"] or "").lower()


def test_a_huge_body_is_not_read_to_the_end(e2e_app, start_worker, trickler):
    rx = trickler(HUGE)
    app = e2e_app(TRAKKR_WEBHOOKS_TIMEOUT=TIMEOUT, TRAKKR_WEBHOOKS_RESPONSE_BODY_LIMIT=1000)
    make_webhook(app, rx.url + "/hooks")
    start_worker(app)
    event_id = emit(app)

    delivery = _finished(app, event_id, 1)
    [attempt] = delivery["attempts"]
    assert delivery["status"] == "succeeded" and attempt["status_code"] == 200
    assert attempt["response_body"] == "y" * 1000
    assert attempt["duration_ms"] < TIMEOUT * 1000
    # The worker hung up long before the (never ending) body was over.
    wait_until(lambda: rx.connections and rx.connections[0].closed, 10, "the worker to close the connection")


@pytest.mark.parametrize("mode", [STATUS, HEADERS, BODY])
def test_the_test_route_answers_within_the_timeout_whatever_the_receiver_trickles(
    brand_app, brand_client, trickler, mode
):
    # brand_app: TRAKKR_WEBHOOKS_TIMEOUT 2 (LOCAL_CONFIG).
    rx = trickler(mode)
    hook = make_webhook(brand_app, rx.url + "/hooks")
    started = time.monotonic()
    response = brand_client.post(f"/webhooks/{hook}/test")
    took = time.monotonic() - started
    print(f"/test against a trickled {mode}: answered in {took:.3f} s")
    assert response.status_code == 200
    body = response.get_json()
    # The attempt's own bound is duration_ms, below. The route's database work on top of it
    # once took 2.2 s in CI under load (the attempt itself: 2,002 ms); every trickle here
    # lasts 70 s or more, so 3 s of slack still tells a cut-off attempt from a waited-out one.
    assert took < TIMEOUT + MARGIN + 3.0
    assert body["success"] is False and body["status_code"] is None
    assert body["error"]["type"] in ("ReadTimeout", "Timeout")
    assert body["duration_ms"] < (TIMEOUT + MARGIN) * 1000
    [attempt] = body["delivery"]["attempts"]
    assert attempt["status_code"] is None


SECRETS = {
    "auth_token": "tok_PARTNER_s3cr3t/value+x",
    "signing_secret": "whsec_c2VjcmV0LXNpZ25pbmcta2V5LWZvci1lMmUtdGVzdHM=",
}


def _assert_no_secret(document: Any, secrets: list[str]) -> None:
    text = json.dumps(document, default=str)
    for secret in secrets:
        assert secret not in text
        assert json.dumps(secret)[1:-1] not in text


def test_echoed_credentials_and_secrets_are_redacted_in_the_deliveries_api(
    start_worker, trickler, brand_client, brand_app
):
    previous = "whsec_b2xkLXNlY3JldC1zdGlsbC1pbi1ncmFjZQ=="
    # A receiver that also echoes its own configuration: both signing secrets, one as the bare key.
    rx = trickler(ECHO, extra={"Secret": SECRETS["signing_secret"], "Previous": previous[len("whsec_") :]})
    hook = make_webhook(
        brand_app,
        rx.url + "/hooks",
        auth_token=SECRETS["auth_token"],
        signing_secret=SECRETS["signing_secret"],
        previous_signing_secret=previous,
        previous_secret_expires_at=datetime.now(timezone.utc) + timedelta(hours=1),  # still in its grace period
    )
    start_worker(brand_app)
    event_id = emit(brand_app)
    delivery = _finished(brand_app, event_id, 1)

    [request] = rx.requests
    assert request["headers"]["Authorization"] == f"Bearer {SECRETS['auth_token']}"  # it was sent, and echoed
    [attempt] = delivery["attempts"]
    assert attempt["status_code"] == 200 and "[REDACTED]" in attempt["response_body"]
    headers = attempt["response_headers"]
    assert headers["X-Echo-Authorization"] == headers["X-Echo-Secret"] == headers["X-Echo-Previous"] == "[REDACTED]"
    assert json.loads(attempt["response_body"])["extra"] == {"Secret": "[REDACTED]", "Previous": "[REDACTED]"}
    listed = brand_client.get(f"/webhooks/{hook}/deliveries").get_json()
    detail = brand_client.get(f"/webhooks/{hook}/deliveries/{delivery['id']}").get_json()
    assert detail["attempts"][0]["response_body"] == attempt["response_body"]
    _assert_no_secret([listed, detail, attempt], [*SECRETS.values(), previous, previous[len("whsec_") :]])


def test_the_test_route_redacts_echoed_basic_and_api_key_credentials(brand_app, brand_client, trickler):
    rx = trickler(ECHO)
    basic = make_webhook(
        brand_app, rx.url + "/basic", auth_type="basic", auth_token=None, auth_username="ops", auth_password="pw-9f8e7d"
    )
    key = make_webhook(
        brand_app,
        rx.url + "/key",
        auth_type="api_key",
        auth_token=None,
        api_key_header="X-Api-Key",
        api_key_value="key-0a1b2c3d",
    )
    answers = [brand_client.post(f"/webhooks/{hook}/test").get_json() for hook in (basic, key)]
    assert [a["success"] for a in answers] == [True, True]
    sent_basic = rx.requests[0]["headers"]["Authorization"]
    assert sent_basic.startswith("Basic ")
    _assert_no_secret(answers, ["pw-9f8e7d", sent_basic, sent_basic.split(" ", 1)[1], "key-0a1b2c3d", "whsec_e2e"])
    assert answers[1]["delivery"]["attempts"][0]["response_headers"]["X-Echo-X-Api-Key"] == "[REDACTED]"


def test_a_503_with_retry_after_waits_for_it_a_503_without_keeps_the_backoff(e2e_app, receiver, start_worker):
    app = e2e_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[0.2, 0.2, 0.2])
    make_webhook(app, receiver.url + "/hooks")
    receiver.script(Reply(503, {"Retry-After": "2"}), Reply(503))
    start_worker(app)
    event_id = emit(app)

    first, second, third = receiver.wait_for(3, timeout=20)
    delivery = _finished(app, event_id, 3)
    honoured, backoff = second.at - first.at, third.at - second.at
    print(f"503 Retry-After 2 waited {honoured:.3f}s; 503 without it waited {backoff:.3f}s")
    assert 2.0 <= honoured < 3.0
    assert 0.2 <= backoff < 1.2
    assert [a["status_code"] for a in delivery["attempts"]] == [503, 503, 200]
    assert delivery["status"] == "succeeded"
