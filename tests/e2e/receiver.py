"""A real HTTP receiver on 127.0.0.1 whose answers are scripted per request.

Threaded (a hanging answer never blocks the next request), HTTP/1.1 keep-alive with
``TCP_NODELAY`` (without it, keep-alive POSTs stall on delayed ACKs). Every request is
recorded with its arrival time, and checked: the ``X-Trakkr-Signature`` with
``receiver_kit.verify_signature`` and the auth header against the expected value.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from receiver_kit import verify_signature

#: Every end-to-end wait is multiplied by this: waits end as soon as their condition holds, so
#: generous limits cost nothing when things work and absorb a loaded 2-core CI machine.
TIMEOUT_SCALE = float(os.environ.get("TRAKKR_E2E_TIMEOUT_SCALE", "3"))


@dataclass(frozen=True)
class Reply:
    """Answer ``status`` with ``headers`` and ``body``."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0  #: seconds to wait before answering


@dataclass(frozen=True)
class Hang:
    """Answer nothing for ``seconds`` (or until the receiver stops), then close."""

    seconds: float = 30.0


def redirect(location: str, status: int = 302) -> Reply:
    """A redirect answer."""
    return Reply(status, {"Location": location}, b"")


@dataclass
class Received:
    """One request as it arrived."""

    at: float  # time.monotonic()
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool | None
    auth_ok: bool | None
    answer: Any

    @property
    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class Server(ThreadingHTTPServer):
    """A threaded HTTP server with a real listen backlog.

    ``ThreadingHTTPServer`` listens with a backlog of 5. A worker opens up to
    PER_HOST_CONCURRENCY (8) connections at once; on a loaded machine the accept loop lags,
    the kernel drops the connections past the backlog, and the client's SYN is resent after
    1 s, exactly the e2e connect timeout: a spurious ``ConnectTimeout``. A real server
    listens with hundreds.
    """

    request_queue_size = 128
    daemon_threads = True


class Receiver:
    """``with Receiver(secret=..., auth=...) as rx: rx.script(Reply(500), Reply(200))``."""

    def __init__(self, *, secret: str | None = None, auth: tuple[str, str] | None = None) -> None:
        self.secret = secret
        self.auth = auth  # (header name, expected value)
        self.received: list[Received] = []
        #: Answer given when the script is empty.
        self.default: Any = Reply(200)
        self.in_flight = 0
        self.max_in_flight = 0
        self._script: deque[Any] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                answer = receiver._record(self.path, dict(self.headers), body)
                try:
                    self._answer(answer)
                finally:
                    with receiver._cond:
                        receiver.in_flight -= 1

            def _answer(self, answer: Any) -> None:
                if isinstance(answer, Hang):
                    receiver._stop.wait(answer.seconds)
                    self.close_connection = True
                    return
                if answer.delay:
                    receiver._stop.wait(answer.delay)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # -- lifecycle --
    def start(self) -> Receiver:
        """Start serving."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release hanging answers."""
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    # -- script and records --
    def script(self, *answers: Any) -> None:
        """Answer the next requests with ``answers`` in order; afterwards :attr:`default`."""
        with self._cond:
            self._script.extend(answers)

    def _record(self, path: str, headers: dict[str, str], body: bytes) -> Any:
        signature = headers.get("X-Trakkr-Signature")
        signature_ok = verify_signature(body, signature, self.secret) if self.secret else None
        auth_ok = headers.get(self.auth[0]) == self.auth[1] if self.auth else None
        with self._cond:
            answer = self._script.popleft() if self._script else self.default
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.received.append(Received(time.monotonic(), path, headers, body, signature_ok, auth_ok, answer))
            self._cond.notify_all()
        return answer

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        """Wait until ``count`` requests arrived; ``AssertionError`` after ``timeout`` (scaled) seconds."""
        timeout *= TIMEOUT_SCALE
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"receiver got {len(self.received)} of {count} requests in {timeout}s")
                self._cond.wait(left)
            return list(self.received)
