"""A fast HTTP/1.1 receiver process on 127.0.0.1, for the benchmarks and the fault test.

Run as ``python -m bench.receiver [options]``; it prints one JSON line
``{"ports": [...], "pid": ...}`` once it listens, serves until SIGTERM, then writes its
request log (``--log``) and exits.

Built so the receiver is never the bottleneck of what it measures: one asyncio
``Protocol`` per connection (no thread per request), HTTP/1.1 keep-alive with
``TCP_NODELAY``, and every answer written in a single call (status line, headers and
body together), so no request waits on a delayed ACK. ``GET /_stats`` answers the
counters as JSON.

Answers:

* default: ``200 ok``, after ``--delay`` seconds (0: at once);
* ``--flapping N --cycle 200:2,500:0.5,429:0.5,hang:0.5``: endpoints ``/e/0`` to
  ``/e/N-1`` cycle through those answers (each with its own phase); ``hang`` holds
  the answer ``--hang`` seconds (longer than the sender's timeout) and then processes
  the event, like a slow handler whose caller gave up;
* ``--secret S``: the ``X-Trakkr-Signature`` is checked with
  ``receiver_kit.verify_signature`` (401 when wrong);
* ``--idempotency``: a 200 runs the "handler" under a ``receiver_kit``
  :class:`~receiver_kit.idempotency.MemoryStore` keyed by endpoint and
  ``meta.event_id``: a repeat of a completed event is answered 200 without running
  it, a repeat while it runs gets 503 with ``Retry-After``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import time
from typing import Any

_REASONS = {
    200: b"OK",
    401: b"Unauthorized",
    404: b"Not Found",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


def response(status: int, body: bytes = b"ok", headers: dict[str, str] | None = None) -> bytes:
    """One complete HTTP/1.1 response as bytes (written in one call)."""
    head = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Status")), b"Content-Length: %d" % len(body)]
    for name, value in (headers or {}).items():
        head.append(f"{name}: {value}".encode("latin-1"))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


_OK = response(200)


def parse_cycle(text: str) -> list[tuple[str, float]]:
    """``"200:2,500:0.5"`` -> ``[("200", 2.0), ("500", 0.5)]``."""
    out = []
    for part in text.split(","):
        mode, _, seconds = part.strip().partition(":")
        if mode not in ("200", "500", "429", "hang"):
            raise ValueError(f"unknown answer {mode!r} in --cycle (200, 500, 429, hang)")
        out.append((mode, float(seconds or 1)))
    return out


class Server:
    """The receiver's state: options, counters, the idempotency store and the request log."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.delay: float = args.delay
        self.secret: str | None = args.secret
        self.flapping: int = args.flapping
        self.cycle = parse_cycle(args.cycle)
        self.period = sum(seconds for _, seconds in self.cycle)
        self.hang: float = args.hang
        self.log_path: str | None = args.log
        self.log: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self.requests = 0  # POSTs (the deliveries), not the stats requests
        self.processed = 0
        self.duplicates = 0
        self.store = None
        self.runs: dict[str, int] = {}  # idempotency key -> times the handler ran
        if args.idempotency:
            from receiver_kit.idempotency import MemoryStore

            self.store = MemoryStore(processing_ttl=60)
        self.fast = not (self.secret or self.flapping or self.store or self.log_path)

    # -- one request -------------------------------------------------------------------------

    def handle(self, conn: Connection, head: bytes, body: bytes) -> None:
        """Answer one request on ``conn``."""
        if head.startswith(b"GET /_stats"):
            stats = {"requests": self.requests, "processed": self.processed, "duplicates": self.duplicates}
            conn.send(response(200, json.dumps(stats).encode()))
            return
        self.requests += 1
        if self.fast:
            if self.delay:
                conn.later(self.delay, _OK)
            else:
                conn.send(_OK)
            return
        self._scripted(conn, head, body)

    def _scripted(self, conn: Connection, head: bytes, body: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1] if " " in lines[0] else "/"
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        entry: dict[str, Any] = {
            "t": round(time.monotonic() - self.started, 4),
            "at": time.monotonic(),  # the machine's monotonic clock: comparable across processes
            "path": path,
            "delivery": headers.get("x-trakkr-delivery"),
            "event": None,
            "answer": None,
            "processed": False,
        }
        if self.log_path:
            self.log.append(entry)
        if self.secret is not None:
            from receiver_kit import verify_signature

            if not verify_signature(body, headers.get("x-trakkr-signature"), self.secret):
                entry["answer"] = 401
                conn.send(response(401, b"bad signature"))
                return
        try:
            payload = json.loads(body)
            entry["event"] = payload["meta"]["event_id"]
        except (ValueError, KeyError, TypeError):
            entry["answer"] = 400
            conn.send(response(400, b"bad body"))
            return
        mode = self.mode_of(path)
        if mode == "500":
            entry["answer"] = 500
            conn.send(response(500, b"flapping"))
        elif mode == "429":
            entry["answer"] = 429
            conn.send(response(429, b"slow down", {"Retry-After": "1"}))
        elif mode == "hang":
            entry["answer"] = "hang"
            # The caller times out first; the handler still runs, as a slow one would.
            asyncio.get_running_loop().call_later(self.hang, self._process, conn, path, entry, True)
        else:
            entry["answer"] = self._process(conn, path, entry, False)

    def _process(self, conn: Connection, path: str, entry: dict[str, Any], late: bool) -> int:
        """Run the "handler" once per (endpoint, event) under the idempotency store; answer."""
        key = f"{path}:{entry['event']}"
        if self.store is None:
            self.runs[key] = self.runs.get(key, 0) + 1
            entry["processed"] = True
            self.processed += 1
            status = 200
        else:
            claim = self.store.claim(key)
            if claim.acquired:
                self.runs[key] = self.runs.get(key, 0) + 1  # the handler's work
                self.store.complete(key, claim.token or "")
                entry["processed"] = True
                self.processed += 1
                status = 200
            elif claim.state == "completed":
                self.duplicates += 1
                entry["duplicate"] = True
                status = 200
            else:
                status = 503
        sent = conn.send(response(status, b"ok", {"Retry-After": "1"} if status == 503 else None))
        if late:
            # Written on a connection the sender still holds, a late 200 can be read as the
            # answer: a sending thread that lost the CPU past its deadline still finds it there.
            entry["late_answer"] = status
            entry["late_sent"] = sent
        return status

    def mode_of(self, path: str) -> str:
        """The answer endpoint ``path`` gives right now (flapping endpoints follow the cycle)."""
        if not path.startswith("/e/"):
            return "200"
        try:
            index = int(path[3:].split("/")[0])
        except ValueError:
            return "200"
        if index >= self.flapping:
            return "200"
        # Each endpoint has its own phase, so they do not all fail at once.
        at = (time.monotonic() - self.started + index * self.period / max(1, self.flapping)) % self.period
        for mode, seconds in self.cycle:
            if at < seconds:
                return mode
            at -= seconds
        return self.cycle[-1][0]

    def write_log(self) -> None:
        """Write the request log and the handler's run counts (``--log``)."""
        if not self.log_path:
            return
        tmp = self.log_path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"requests": self.log, "runs": self.runs, "duplicates": self.duplicates}, fh)
        os.replace(tmp, self.log_path)


class Connection(asyncio.Protocol):
    """One keep-alive connection: parses requests as bytes arrive, answers each in one write."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        """Keep the transport; answers go out without Nagle's delay."""
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Buffer the bytes and hand every complete request (head and body) to the server."""
        buffer = self.buffer
        buffer += data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end])
            length = 0
            at = head.lower().find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            total = end + 4 + length
            if len(buffer) < total:
                return
            body = bytes(buffer[end + 4 : total])
            del buffer[:total]
            self.server.handle(self, head, body)

    def send(self, data: bytes) -> bool:
        """Write one whole answer (dropped if the client went away); whether it was written."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            return True
        return False

    def later(self, delay: float, data: bytes) -> None:
        """Write ``data`` after ``delay`` seconds (answers on one connection stay in order)."""
        asyncio.get_running_loop().call_later(delay, self.send, data)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the transport: answers still pending for this connection are dropped."""
        self.transport = None


async def serve(args: argparse.Namespace) -> None:
    """Listen on ``--ports`` ports (or the ``--port`` list), print them, serve until SIGTERM."""
    loop = asyncio.get_running_loop()
    server = Server(args)
    fixed = [int(p) for p in args.port.split(",")] if args.port else [0] * args.ports
    listeners = [
        await loop.create_server(lambda: Connection(server), "127.0.0.1", port, backlog=1024) for port in fixed
    ]
    ports = [listener.sockets[0].getsockname()[1] for listener in listeners]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"ports": ports, "pid": os.getpid()}), flush=True)
    await stop.wait()
    for listener in listeners:
        listener.close()
    server.write_log()


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", type=int, default=1, help="how many ports to listen on (random free ports)")
    parser.add_argument("--port", default="", help="comma-separated fixed ports instead")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each plain answer")
    parser.add_argument("--secret", default=None, help="check X-Trakkr-Signature with this secret")
    parser.add_argument("--flapping", type=int, default=0, help="endpoints /e/0../e/N-1 flap")
    parser.add_argument("--cycle", default="200:2,500:0.5,429:0.5,hang:0.5", help="answers of a flapping endpoint")
    parser.add_argument("--hang", type=float, default=1.5, help="seconds a hanging answer is held")
    parser.add_argument("--idempotency", action="store_true", help="run the handler under a receiver_kit MemoryStore")
    parser.add_argument("--log", default=None, help="write every request here (JSON) at exit")
    args = parser.parse_args(argv)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
