"""50 simultaneous deliveries of one event to a real threaded HTTP server on 127.0.0.1, per store.

The handler sleeps 0.2 s so every delivery arrives while the first is still running.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import requests
from flask import Flask, jsonify
from werkzeug.serving import make_server

from receiver_kit.flask import idempotent, verify_webhook
from receiver_kit.testing import sample_payload, signed_request

SECRET = "concurrency-secret"
DELIVERIES = 50
HANDLER_SECONDS = 0.2


@pytest.fixture
def serve() -> Iterator:
    """``serve(app)`` -> base URL of ``app`` on a threaded server; stopped after the test."""
    servers = []

    def start(app: Flask) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(5)


def deliver_at_once(url: str, payload: dict, n: int = DELIVERIES) -> list[requests.Response]:
    """POST the same signed delivery from ``n`` threads released together."""
    req = signed_request(payload, SECRET)
    headers = {**req.headers, "Connection": "close"}  # one request per connection: no keep-alive stalls
    barrier = threading.Barrier(n)
    responses: list = [None] * n

    def one(i: int) -> None:
        barrier.wait()
        responses[i] = requests.post(url, data=req.body, headers=headers, timeout=30)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(isinstance(r, requests.Response) for r in responses)
    return responses


@pytest.fixture
def receiver(flask_app, make_store, calls, serve):
    """A receiver whose handler sleeps; ``fail_next`` makes its next run raise. Returns (url, store, state)."""
    store = make_store()
    state = {"fail_next": False}

    @flask_app.post("/hooks")
    @verify_webhook(secret=SECRET)
    @idempotent(store=store)
    def handler(payload):
        calls.hit()
        time.sleep(HANDLER_SECONDS)
        if state["fail_next"]:
            state["fail_next"] = False
            raise RuntimeError("crashed half-way")
        return jsonify({"handled": payload["meta"]["event_id"]})

    return serve(flask_app) + "/hooks", store, state


def summarise(responses: list[requests.Response]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for r in responses:
        if r.status_code == 200:
            kind = "duplicate" if r.json().get("duplicate") else "handled"
        else:
            kind = str(r.status_code)
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def test_fifty_simultaneous_deliveries_run_the_handler_exactly_once(receiver, calls):
    url, store, _ = receiver
    payload = sample_payload()
    responses = deliver_at_once(url, payload)
    kinds = summarise(responses)
    assert calls.count == 1, kinds
    assert kinds.get("handled") == 1
    assert set(kinds) <= {"handled", "duplicate", "503"}
    assert all(r.headers.get("Retry-After") == "5" for r in responses if r.status_code == 503)
    # A later retry of the same event: answered, not run.
    late = requests.post(url, **signed_request(payload, SECRET).kwargs(), timeout=10)
    assert late.json()["duplicate"] is True
    assert calls.count == 1


def test_handler_that_raises_once_runs_again_exactly_once(receiver, calls):
    url, store, state = receiver
    payload = sample_payload()
    state["fail_next"] = True
    first = requests.post(url, **signed_request(payload, SECRET).kwargs(), timeout=10)
    assert first.status_code == 500
    assert calls.count == 1
    # The sender retries, and (say) a redelivery races it: 50 at once.
    kinds = summarise(deliver_at_once(url, payload))
    assert calls.count == 2, kinds
    assert kinds.get("handled") == 1
    assert requests.post(url, **signed_request(payload, SECRET).kwargs(), timeout=10).json()["duplicate"] is True
    assert calls.count == 2


def test_claim_of_a_dead_process_is_taken_over_after_its_ttl(receiver, calls):
    url, store, _ = receiver
    payload = sample_payload()
    event_id = payload["meta"]["event_id"]
    # A worker claimed the event, then its process died: no complete, no release.
    dead = store.claim(event_id, processing_ttl=0.3)
    assert dead.acquired
    busy = requests.post(url, **signed_request(payload, SECRET).kwargs(), timeout=10)
    assert (busy.status_code, busy.headers["Retry-After"]) == (503, "5")
    assert calls.count == 0
    time.sleep(0.4)
    kinds = summarise(deliver_at_once(url, payload, n=20))
    assert calls.count == 1, kinds
    assert kinds.get("handled") == 1
    assert store.complete(event_id, dead.token) is False  # the dead worker cannot overwrite the new owner
