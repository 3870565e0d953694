"""The HTTP client alone: CPU per request of the delivery client against ``requests`` and urllib3.

Run as ``python -m bench.client``. Every variant POSTs the same signed ~1 KB body with the
same headers to one local instant receiver (``bench.receiver``), one request after the
other on one warm keep-alive connection, reading the whole answer; the variants alternate
round by round so that all of them see the same machine load:

* **requests.Session**: what the worker used before (and what users write); ``trust_env``
  off, as the worker's session had it;
* **ssrf.PinnedClient**: what the worker sends with now, vetting included
  (:func:`flask_trakkr_webhooks.ssrf.safe_send` with a deadline);
* **urllib3 pool**: a bare ``HTTPConnectionPool.urlopen``, the floor under both.

CPU is this process's (user + system) per request; the receiver runs in its own process.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import requests
import urllib3

from bench.common import ReceiverProcess, stats
from bench.kit import SECRET, body_of
from flask_trakkr_webhooks import ssrf
from receiver_kit import sign_payload

HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": "flask-trakkr-webhooks/bench",
    "X-Trakkr-Event": "visibility_changed",
    "X-Trakkr-Delivery": "dlv_0123456789abcdef01234567",
}


def variants(url: str, body: bytes, headers: dict[str, str]) -> dict[str, Callable[[], int]]:
    """One request per call of each variant; each returns the answer's status."""
    session = requests.Session()
    session.trust_env = False
    client = ssrf.PinnedClient()
    outgoing = ssrf.Outgoing("POST", url, body, headers)
    parsed = urllib3.util.parse_url(url)
    pool = urllib3.HTTPConnectionPool(parsed.host or "", parsed.port, maxsize=1)

    def with_requests() -> int:
        with session.post(url, data=body, headers=headers, timeout=10) as response:
            return response.status_code

    def with_pinned_client() -> int:
        response = ssrf.safe_send(client, outgoing, timeout=10, deadline=time.monotonic() + 10, allow_private=True)
        response.read()
        return response.status

    def with_urllib3() -> int:
        response = pool.urlopen("POST", parsed.request_uri, body=body, headers=headers, retries=False, timeout=10)
        return response.status

    return {"requests.Session": with_requests, "ssrf.PinnedClient": with_pinned_client, "urllib3 pool": with_urllib3}


def cpu_per_call_us(func: Callable[[], int], count: int) -> float:
    """This process's CPU per call of ``func`` (µs); every call must answer 200."""
    started = time.process_time()
    for _ in range(count):
        if func() != 200:
            raise RuntimeError("the receiver did not answer 200")
    return (time.process_time() - started) / count * 1e6


def main(argv: list[str] | None = None) -> int:
    """Print a table: µs of CPU per request of each variant (median and range over the rounds)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per variant per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (the variants alternate within each)")
    args = parser.parse_args(argv)
    body = body_of(1024)
    headers = {**HEADERS, "X-Trakkr-Signature": sign_payload(body, SECRET)}
    with ReceiverProcess("--ports", "1") as rx:
        calls = variants(rx.url() + "/hook", body, headers)
        for func in calls.values():  # warm: connections open, code paths loaded
            cpu_per_call_us(func, 200)
        measured: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(args.rounds):
            for name, func in calls.items():
                measured[name].append(cpu_per_call_us(func, args.requests))
    base = stats(measured["requests.Session"]).median
    print("| client | CPU µs per request | ÷ requests.Session |")
    print("|---|---|---|")
    for name, values in measured.items():
        result = stats(values)
        print(f"| {name} | {result.show()} | {result.median / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
