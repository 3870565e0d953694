"""End to end: a real worker serving ``--metrics-port``; what it counts equals what the database holds.

A known mix of outcomes, each from its own receiver path: successes, 500-then-200 (a retried
5xx), a 410 (the webhook is disabled), and a receiver slower than the timeout (three timeouts,
then failed). After every delivery has ended, the scraped counters equal the database's
deliveries and attempts, and the lag histogram counts every success.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from e2e.conftest import wait_until
from e2e.helpers import emit, make_webhook
from e2e.receiver import Server
from flask_trakkr_webhooks import get_state, metrics
from flask_trakkr_webhooks.models import CANCELLED, FAILED, SUCCEEDED

pytestmark = pytest.mark.e2e

OTHER_BRAND = {"id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "name": "Other", "website": "https://other.example"}


class PathReceiver:
    """``/ok`` 200; ``/flaky`` 500 to a delivery's first request, then 200; ``/gone`` 410;
    ``/slow`` answers after 3 s (past the 1 s timeout)."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                delivery = self.headers.get("X-Trakkr-Delivery", "")
                with receiver._lock:
                    receiver.seen[delivery] += 1
                    first = receiver.seen[delivery] == 1
                status = 200
                if self.path == "/flaky" and first:
                    status = 500
                elif self.path == "/gone":
                    status = 410
                elif self.path == "/slow":
                    receiver._stop.wait(3)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> PathReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def path_receiver() -> Iterator[PathReceiver]:
    """A :class:`PathReceiver` on 127.0.0.1."""
    with PathReceiver() as rx:
        yield rx


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``http://127.0.0.1:PORT/metrics``: ``(name, sorted labels) -> value``."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def by(samples: dict[Any, float], name: str, *keys: str) -> dict[tuple[str, ...], float]:
    """Samples of ``name`` keyed by the values of ``keys`` (zeros left out)."""
    out: dict[tuple[str, ...], float] = {}
    for (sample, labels), value in samples.items():
        if sample == name and value:
            found = dict(labels)
            out[tuple(found[k] for k in keys)] = value
    return out


def database_counts(app: Any) -> dict[str, Any]:
    """What the database records: deliveries by (event type, provider, status), attempts by result."""
    with app.app_context():
        state = get_state(app)
        m = state.models
        deliveries = Counter(
            (d.event.type, d.webhook.provider, d.status) for d in m.Delivery.query.all() if not d.is_test
        )
        attempts: Counter[tuple[str, ...]] = Counter()
        for a in m.Attempt.query.all():
            if a.status_code is not None:
                result = metrics.result_class(a.status_code, None)
            else:
                result = "timeout" if "Timeout" in (a.error_type or "") else f"other:{a.error_type}"
            attempts[("webhook", result)] += 1
        disabled = Counter(
            "gone" if "410" in (w.disabled_reason or "") else "failing"
            for w in m.Webhook.query.all()
            if w.disabled_reason
        )
        return {
            "deliveries": {k: float(v) for k, v in deliveries.items()},
            "attempts": {k: float(v) for k, v in attempts.items()},
            "attempt_count": float(sum(attempts.values())),
            "succeeded": float(sum(v for (_, _, s), v in deliveries.items() if s == SUCCEEDED)),
            "disabled": {(k,): float(v) for k, v in disabled.items()},
        }


def test_scraped_counters_equal_the_database_after_a_mix_of_outcomes(e2e_app, path_receiver, start_worker):
    app = e2e_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[0.2, 0.2], TRAKKR_WEBHOOKS_TIMEOUT=1, TRAKKR_WEBHOOKS_STUCK_AFTER=10)
    for path in ("/ok", "/ok", "/flaky", "/slow"):
        make_webhook(app, path_receiver.url + path)
    make_webhook(app, path_receiver.url + "/gone", brand_id=OTHER_BRAND["id"])
    emits_before = metrics.EMITS.labels("visibility_changed")._value.get()
    port = free_port()
    worker = start_worker(app, "worker", "--metrics-port", str(port))
    wait_until(lambda: _answers(port), 30, "the worker's metrics server")

    started = time.monotonic()
    for _ in range(3):
        emit(app)
    emit(app, brand=OTHER_BRAND)
    # Emits are counted where they happen: this process's default registry.
    assert metrics.EMITS.labels("visibility_changed")._value.get() - emits_before == 4

    def ended() -> bool:
        with app.app_context():
            D = get_state(app).models.Delivery
            rows = D.query.all()
            return len(rows) == 13 and all(d.status in (SUCCEEDED, FAILED, CANCELLED) for d in rows)

    wait_until(ended, 60, "every delivery to end")
    db = database_counts(app)
    # The mix happened as planned: 9 successes (3 of them after a 500), 3 timeouts x 3, one 410.
    assert db["deliveries"] == {
        ("visibility_changed", "webhook", SUCCEEDED): 9.0,
        ("visibility_changed", "webhook", FAILED): 4.0,
    }
    assert db["attempts"] == {
        ("webhook", "2xx"): 9.0,
        ("webhook", "5xx"): 3.0,
        ("webhook", "4xx"): 1.0,
        ("webhook", "timeout"): 9.0,
    }
    assert db["disabled"] == {("gone",): 1.0}

    def scraped_matches() -> dict[Any, float] | None:
        samples = scrape(port)
        counted = by(samples, "trakkr_webhooks_attempts_total", "provider", "result")
        return samples if counted == db["attempts"] else None

    samples = wait_until(scraped_matches, 10, "the scraped attempts to equal the database's")
    assert by(samples, "trakkr_webhooks_deliveries_total", "event_type", "provider", "outcome") == db["deliveries"]
    assert by(samples, "trakkr_webhooks_attempts_total", "provider", "result") == db["attempts"]
    assert by(samples, "trakkr_webhooks_attempt_duration_seconds_count", "provider") == {
        ("webhook",): db["attempt_count"]
    }
    assert by(samples, "trakkr_webhooks_endpoints_disabled_total", "reason") == db["disabled"]
    # The lag histogram counts every success, each within the run's duration.
    lag_count = samples[("trakkr_webhooks_delivery_lag_seconds_count", ())]
    lag_sum = samples[("trakkr_webhooks_delivery_lag_seconds_sum", ())]
    assert lag_count == db["succeeded"] == 9.0
    assert 0 < lag_sum <= 9 * (time.monotonic() - started)
    assert samples[("trakkr_webhooks_delivery_lag_seconds_bucket", (("le", "+Inf"),))] == 9.0
    # Nothing is left open or in flight.
    assert by(samples, "trakkr_webhooks_backlog", "status") == {}
    assert {s for (s, labels) in samples if s == "trakkr_webhooks_backlog"} == {"trakkr_webhooks_backlog"}
    assert samples[("trakkr_webhooks_in_flight", ())] == 0.0
    assert samples[("trakkr_webhooks_oldest_waiting_seconds", ())] == 0.0
    # One structured line per attempt in the worker's log (text format), no URL in any.
    lines = [line for line in worker.output().splitlines() if "delivery_id=" in line]
    assert len(lines) == db["attempt_count"]
    assert not any(path_receiver.url in line for line in worker.output().splitlines())


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=1).ok
    except requests.ConnectionError:
        return False
