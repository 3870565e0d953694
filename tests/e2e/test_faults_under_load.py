"""Faults under load: thousands of events, flapping endpoints, a worker SIGKILLed twice and
Redis restarted once; every delivery still ends ``succeeded`` or ``failed``.

Real processes: ``flask webhooks worker`` (restarted after each SIGKILL), a private
embedded Redis (never the machine's: it is restarted, losing every queued job, scheduled
retry and de-duplication record), and the receiver process of :mod:`bench.receiver` on
20 ports (one endpoint each). Eight endpoints flap: 200 for 2 s, 500 for 0.5 s, 429
(``Retry-After: 1``) for 0.5 s, then hang for 0.5 s (a hung request is held 1.5 s, past
the 1 s timeout, and then processed, like a slow handler whose caller gave up). The
receiver verifies every signature with ``receiver_kit`` and runs its "handler" under a
``receiver_kit`` ``MemoryStore`` keyed by endpoint and ``meta.event_id``.

Timing is bounded by small settings: ``TIMEOUT`` 1 s, ``RETRY_DELAYS`` 0.2/0.4/0.8 s,
``STUCK_AFTER`` 10 s (above the worker's (BATCH_SIZE / PER_HOST_CONCURRENCY + 2) x TIMEOUT
= 9 s, so a delivery waiting for a busy host is never taken for stuck), ``SWEEP_INTERVAL``
0.5 s. Size: ``TRAKKR_FAULT_EVENTS`` events (default 5,000), each to the 4 endpoints of its
brand (5 brands x 4 = 20 endpoints).
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections import Counter, defaultdict
from typing import Any

import pytest
import sqlalchemy as sa

from bench.common import ReceiverProcess
from e2e.conftest import wait_until
from flask_trakkr_webhooks import engine, get_state, ids
from flask_trakkr_webhooks.testing import EmbeddedRedis

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EVENTS = int(os.environ.get("TRAKKR_FAULT_EVENTS", "5000"))
BRANDS = 5
ENDPOINTS_PER_BRAND = 4
FLAPPING = 8  # endpoints /e/0 .. /e/7 (two per brand)
SECRET = "whsec_faults_under_load"
EVENTS_PER_COMMIT = 25
#: Fraction of all deliveries finished when each fault is injected, in this order.
FAULTS = ((0.15, "kill"), (0.40, "restart redis"), (0.65, "kill"))
CONFIG = dict(
    TRAKKR_WEBHOOKS_REQUIRE_HTTPS=False,
    TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=True,
    TRAKKR_WEBHOOKS_TIMEOUT=1,
    TRAKKR_WEBHOOKS_RETRY_DELAYS=[0.2, 0.4, 0.8],
    TRAKKR_WEBHOOKS_STUCK_AFTER=10,
    TRAKKR_WEBHOOKS_SWEEP_INTERVAL=0.5,
)


def _add_webhooks(app: Any, urls_by_brand: dict[str, list[str]]) -> None:
    state = get_state(app)
    now = ids.utcnow()
    rows = [
        dict(
            id=ids.new_id(ids.WEBHOOK),
            brand_id=brand,
            url=url,
            events=["visibility_changed"],
            provider="webhook",
            active=True,
            auth_type="none",
            signing_secret=SECRET,
            headers={},
            created_at=now,
            updated_at=now,
        )
        for brand, urls in urls_by_brand.items()
        for url in urls
    ]
    with app.app_context():
        app.db.session.execute(sa.insert(state.models.Webhook.__table__), rows)
        app.db.session.commit()


def _statuses(app: Any) -> Counter:
    with app.app_context():
        D = get_state(app).models.Delivery
        counts = Counter(dict(app.db.session.execute(sa.select(D.status, sa.func.count()).group_by(D.status)).all()))
        app.db.session.remove()
    return counts


def _alive(pid: int | None) -> bool:
    import psutil

    try:
        return pid is not None and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _finished(app: Any) -> int:
    counts = _statuses(app)
    return counts["succeeded"] + counts["failed"]


def test_faults_under_load(make_app, start_worker, tmp_path, record_property):
    started = time.monotonic()
    redis_server = EmbeddedRedis().start()
    port = redis_server.port
    receiver = ReceiverProcess(
        "--ports",
        str(BRANDS * ENDPOINTS_PER_BRAND),
        "--secret",
        SECRET,
        "--flapping",
        str(FLAPPING),
        "--cycle",
        "200:2,500:0.5,429:0.5,hang:0.5",
        "--hang",
        "1.5",
        "--idempotency",
        "--log",
        str(tmp_path / "receiver.json"),
    )
    try:
        app = make_app(TRAKKR_WEBHOOKS_REDIS_URL=redis_server.url, **CONFIG)
        brands = [{"id": str(uuid.uuid4()), "name": f"Brand {b}", "website": None} for b in range(BRANDS)]
        # Endpoint i listens on port i; brand b gets endpoints b, b+5, b+10, b+15 (so two flapping ones each).
        urls: dict[str, list[str]] = defaultdict(list)
        for index in range(BRANDS * ENDPOINTS_PER_BRAND):
            urls[brands[index % BRANDS]["id"]].append(f"{receiver.url(index)}/e/{index}")
        _add_webhooks(app, urls)
        expected = EVENTS * ENDPOINTS_PER_BRAND
        worker = start_worker(app)

        faults = list(FAULTS)
        injected: list[str] = []

        def inject_due_faults() -> None:
            nonlocal worker, redis_server
            while faults and _finished(app) >= faults[0][0] * expected:
                _, fault = faults.pop(0)
                if fault == "kill":
                    worker.kill(signal.SIGKILL)
                    worker.proc.wait(10)
                    worker = start_worker(app)
                else:
                    redis_server.stop()  # every queued job, scheduled retry and record is lost
                    time.sleep(0.5)
                    redis_server = EmbeddedRedis(port=port).start()
                injected.append(f"{fault} at {time.monotonic() - started:.0f}s")

        emitted = 0
        while emitted < EVENTS:
            with app.app_context():
                for _ in range(min(EVENTS_PER_COMMIT, EVENTS - emitted)):
                    brand = brands[emitted % BRANDS]
                    app.webhooks.emit("visibility_changed", brand=brand, data={"n": emitted})
                    emitted += 1
                app.db.session.commit()
            inject_due_faults()
        emitted_at = time.monotonic() - started

        def all_finished() -> bool:
            inject_due_faults()
            # Fail at once, not after the timeout, if something else stopped our processes.
            assert worker.proc.poll() is None, f"the worker exited by itself ({worker.proc.returncode})"
            assert _alive(redis_server.pid), "the embedded Redis stopped by itself"
            return not faults and _finished(app) >= expected

        wait_until(all_finished, 240, f"all {expected} deliveries to finish", interval=0.5)
        elapsed = time.monotonic() - started
    finally:
        receiver.stop()  # writes its log
        redis_server.stop()

    statuses = _statuses(app)
    log = json.loads((tmp_path / "receiver.json").read_text())
    requests, runs = log["requests"], log["runs"]
    with app.app_context():
        state = get_state(app)
        D, A, W = state.models.Delivery, state.models.Attempt, state.models.Webhook
        rows = app.db.session.execute(
            sa.select(D.id, D.status, D.event_id, D.attempt_count, W.url).join(W, W.id == D.webhook_id)
        ).all()
        attempts = dict(app.db.session.execute(sa.select(A.delivery_id, sa.func.count()).group_by(A.delivery_id)).all())
        app.db.session.remove()

    by_delivery: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for request in requests:
        by_delivery[request["delivery"]].append(request)
    answered_ok = {r["delivery"] for r in requests if r["answer"] == 200}
    # A duplicate: the receiver got an event it had already processed for that endpoint.
    # After a hang it is expected (the handler ran after the sender's timeout, so the sender
    # retried); any other is a delivery sent again although it had been answered.
    after_hang = redelivered = 0
    for seen in by_delivery.values():
        for index, request in enumerate(seen):
            if request.get("duplicate"):
                if any(earlier["answer"] == "hang" for earlier in seen[:index]):
                    after_hang += 1
                else:
                    redelivered += 1
    summary = {
        "events": EVENTS,
        "deliveries": len(rows),
        "succeeded": statuses["succeeded"],
        "failed": statuses["failed"],
        "requests": len(requests),
        "hung_requests": sum(r["answer"] == "hang" for r in requests),
        "duplicates_after_hang": after_hang,
        "duplicates_redelivered": redelivered,
        "faults": injected,
        "emitted_after_s": round(emitted_at),
        "seconds": round(elapsed),
    }
    record_property("faults_under_load", summary)
    print(f"faults under load: {summary}")

    # Every delivery ended, none left pending, queued, sending or retrying.
    assert len(rows) == expected
    assert set(statuses) <= {"succeeded", "failed"}, statuses
    assert len(injected) == len(FAULTS)
    # Every attempt is on record (a killed worker's attempt as WorkerLost).
    assert all(attempts.get(row.id, 0) == row.attempt_count for row in rows)
    # Every signature verified; every succeeded delivery reached the receiver, which said 200.
    assert not [r for r in requests if r["answer"] in (400, 401)]
    assert all(row.id in answered_ok for row in rows if row.status == "succeeded")
    # Each delivery carries one meta.event_id everywhere: the event's.
    event_of = {row.id: row.event_id for row in rows}
    for delivery_id, seen in by_delivery.items():
        assert {r["event"] for r in seen} == {event_of[delivery_id]}, delivery_id
    # The receiver's idempotency store ran each event once per endpoint, and every succeeded one.
    assert all(count == 1 for count in runs.values()), [k for k, c in runs.items() if c != 1][:5]
    for row in rows:
        path = "/" + row.url.split("/", 3)[3]  # http://127.0.0.1:PORT/e/N -> /e/N
        if row.status == "succeeded":
            assert runs.get(f"{path}:{row.event_id}") == 1, (path, row.event_id)
    # Duplicates are rare: at most one per hung request; and a killed worker sends again at
    # most what it had in flight or not yet recorded (CONCURRENCY + one recorder group).
    assert after_hang <= summary["hung_requests"], summary
    kills = sum(fault == "kill" for _, fault in FAULTS)
    assert redelivered <= kills * (get_state(app).settings.concurrency + engine.RECORD_GROUP), summary
