"""Faults under load: thousands of events, flapping endpoints, a worker SIGKILLed twice and
Redis restarted once; every delivery still ends ``succeeded`` or ``failed``. And three workers
on one Redis and database, one SIGKILLed mid-run, with poison rows
(:func:`test_three_workers_one_killed_with_poison_rows`).

Real processes: ``flask webhooks worker`` (restarted after each SIGKILL), a private
embedded Redis (never the machine's: it is restarted, losing every queued job, scheduled
retry and de-duplication record), and the receiver process of :mod:`bench.receiver` on
20 ports (one endpoint each). Eight endpoints flap: 200 for 2 s, 500 for 0.5 s, 429
(``Retry-After: 1``) for 0.5 s, then hang for 0.5 s (a hung request is held 1.5 s, past
the 1 s timeout, and then processed, like a slow handler whose caller gave up). The
receiver verifies every signature with ``receiver_kit`` and runs its "handler" under a
``receiver_kit`` ``MemoryStore`` keyed by endpoint and ``meta.event_id``. A hung request's late
200 counts as an answer when it was written on a connection the sender still held: a sending
thread that lost the CPU past its deadline reads it, and the handler did run.

Timing is bounded by small settings: ``TIMEOUT`` 1 s, ``RETRY_DELAYS`` 0.2/0.4/0.8 s,
``STUCK_AFTER`` 10 s (above the worker's (BATCH_SIZE / PER_HOST_CONCURRENCY + 2) x TIMEOUT
= 9 s, so a delivery waiting for a busy host is never taken for stuck), ``SWEEP_INTERVAL``
0.5 s. Size: ``TRAKKR_FAULT_EVENTS`` events (default 2,000, so the suite stays short;
``.ci/run`` sets 5,000), each to the 4 endpoints of its brand (5 brands x 4 = 20 endpoints).
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from rq.job import Job
from rq.utils import utcparse

from bench.common import ReceiverProcess
from e2e.conftest import wait_until
from flask_trakkr_webhooks import crypto, engine, get_state, ids
from flask_trakkr_webhooks.testing import EmbeddedRedis

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EVENTS = int(os.environ.get("TRAKKR_FAULT_EVENTS", "2000"))
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
    # A 200 the sender could read: on time, or a hung request's late 200 written on a
    # connection the sender still held (a sending thread off the CPU past its deadline
    # finds the answer waiting, and the receiver did run the handler).
    answered_ok = {
        r["delivery"] for r in requests if r["answer"] == 200 or (r.get("late_answer") == 200 and r.get("late_sent"))
    }
    on_time = {r["delivery"] for r in requests if r["answer"] == 200}
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
        "late_answers_sent": sum(bool(r.get("late_sent")) for r in requests),
        "succeeded_on_a_late_answer": sum(row.status == "succeeded" and row.id not in on_time for row in rows),
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
    unanswered = [row.id for row in rows if row.status == "succeeded" and row.id not in answered_ok]
    assert not unanswered, [(d, by_delivery.get(d)) for d in unanswered[:3]]
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


# -- three workers, one SIGKILLed, poison rows -----------------------------------------------------------

#: Healthy deliveries of the multi-worker test (``TRAKKR_MULTI_FAULT_DELIVERIES``; 4 per event).
#: Default 5,000 (26 s on 2 cores), so the suite stays short; ``.ci/run`` sets 20,000 on
#: PostgreSQL (about 2 minutes). Not on SQLite, where three worker processes and the emitting
#: test share one database lock (20,000 took 6 minutes there).
MULTI_DELIVERIES_ENV = "TRAKKR_MULTI_FAULT_DELIVERIES"
MULTI_DELIVERIES = 5000
#: One poison row (a credential encrypted with a key the workers do not hold) per this many.
POISON_EVERY = 1000
MULTI_WORKERS = 3
MULTI_ENDPOINTS = 20
#: ``STUCK_AFTER`` above (ceil(BATCH_SIZE / PER_HOST_CONCURRENCY) + 2) x TIMEOUT = 18 s.
MULTI_CONFIG = dict(
    TRAKKR_WEBHOOKS_REQUIRE_HTTPS=False,
    TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=True,
    TRAKKR_WEBHOOKS_TIMEOUT=2,
    TRAKKR_WEBHOOKS_RETRY_DELAYS=[0.2, 0.4, 0.8],
    TRAKKR_WEBHOOKS_STUCK_AFTER=20,
    TRAKKR_WEBHOOKS_SWEEP_INTERVAL=0.5,
)


def _insert_webhook_rows(app: Any, rows: list[dict[str, Any]]) -> None:
    now = ids.utcnow()
    with app.app_context():
        table = get_state(app).models.Webhook.__table__
        defaults = dict(events=["visibility_changed"], provider="webhook", active=True, headers={})
        values = [dict(defaults, id=ids.new_id(ids.WEBHOOK), created_at=now, updated_at=now, **r) for r in rows]
        app.db.session.execute(sa.insert(table), values)
        app.db.session.commit()


def _note_recovered(app: Any, ids_left: set[str], killed_at: datetime, recovered: dict[str, datetime]) -> None:
    """When each delivery a killed worker held was back in the queue: its new job's ``enqueued_at``
    (RQ's clock), else (already taken again or finished) its new ``claimed_at`` / ``updated_at``
    (upper bounds). Deliveries the live workers had in flight finish within a second or two."""
    if not ids_left:
        return
    state = get_state(app)
    with app.app_context():
        D = state.models.Delivery
        rows = app.db.session.execute(
            sa.select(D.id, D.status, D.claimed_at, D.updated_at).where(D.id.in_(list(ids_left)))
        ).all()
        app.db.session.remove()
    conn = state.redis()
    for row in rows:
        if row.status == "sending" and ids.as_utc(row.claimed_at) <= killed_at:
            job_id = conn.hget(state.jobs_key, row.id)
            enqueued = conn.hget(Job.key_for(job_id.decode()), "enqueued_at") if job_id else None
            if enqueued:
                recovered[row.id] = utcparse(enqueued.decode())
        elif row.status == "sending":
            recovered[row.id] = ids.as_utc(row.claimed_at)
        else:
            recovered[row.id] = ids.as_utc(row.updated_at)


def test_three_workers_one_killed_with_poison_rows(make_app, start_worker, tmp_path, record_property):
    """3 workers on one Redis and database, :data:`MULTI_DELIVERIES` deliveries, one worker SIGKILLed
    at 40 %, one undecryptable credential per 1,000 deliveries: every healthy delivery succeeds,
    every poison row fails with its reason, nothing stays open, attempts stay within the maximum,
    and what the killed worker held is back in the queue within STUCK_AFTER + SWEEP_INTERVAL."""
    started = time.monotonic()
    deliveries = int(os.environ.get(MULTI_DELIVERIES_ENV) or MULTI_DELIVERIES)
    events = deliveries // ENDPOINTS_PER_BRAND
    poison_events = max(1, deliveries // POISON_EVERY)
    key, other_key = crypto.generate_key(), crypto.generate_key()
    receiver = ReceiverProcess(
        "--ports", str(MULTI_ENDPOINTS), "--secret", SECRET, "--log", str(tmp_path / "receiver.json")
    )
    try:
        app = make_app(TRAKKR_WEBHOOKS_ENCRYPTION_KEY=key, **MULTI_CONFIG)
        settings = get_state(app).settings
        brands = [{"id": str(uuid.uuid4()), "name": f"Brand {b}", "website": None} for b in range(BRANDS)]
        poison_brand = {"id": str(uuid.uuid4()), "name": "Poison", "website": None}
        _insert_webhook_rows(
            app,
            [
                dict(
                    brand_id=brands[i % BRANDS]["id"],
                    url=f"{receiver.url(i)}/e/{i}",
                    auth_type="none",
                    signing_secret=SECRET,
                )
                for i in range(MULTI_ENDPOINTS)
            ],
        )
        with crypto.using_keys(other_key):  # written by an app holding another key
            _insert_webhook_rows(
                app,
                [
                    dict(
                        brand_id=poison_brand["id"],
                        url=f"{receiver.url(0)}/poison",
                        auth_type="bearer",
                        auth_token="tok_other_key",
                        signing_secret=SECRET,
                    )
                ],
            )
        workers = [start_worker(app) for _ in range(MULTI_WORKERS)]
        expected = events * ENDPOINTS_PER_BRAND + poison_events
        poison_at = {round(i * events / poison_events) for i in range(poison_events)}

        killed_at: datetime | None = None
        recovered: dict[str, datetime] = {}  # held by the killed worker -> back in the queue at
        held: set[str] = set()  # `sending` when the worker was killed
        recovered_after: float | None = None
        state = get_state(app)

        def watch() -> None:
            nonlocal killed_at, held, recovered_after
            if killed_at is None and _finished(app) >= 0.4 * expected:
                victim = workers[1]
                victim.kill(signal.SIGKILL)
                victim.proc.wait(10)
                killed_at = ids.utcnow()
                with app.app_context():
                    D = state.models.Delivery
                    held = set(
                        app.db.session.execute(
                            sa.select(D.id).where(D.status == "sending", D.claimed_at <= killed_at)
                        ).scalars()
                    )
                    app.db.session.remove()
            elif killed_at is not None and recovered_after is None:
                _note_recovered(app, held - set(recovered), killed_at, recovered)
                if len(recovered) == len(held):
                    recovered_after = max([(at - killed_at).total_seconds() for at in recovered.values()], default=0.0)

        emitted = 0
        while emitted < events:
            with app.app_context():
                for _ in range(min(EVENTS_PER_COMMIT, events - emitted)):
                    if emitted in poison_at:  # in the same commit, so in a batch with healthy ones
                        app.webhooks.emit("visibility_changed", brand=poison_brand, data={"n": emitted})
                    app.webhooks.emit("visibility_changed", brand=brands[emitted % BRANDS], data={"n": emitted})
                    emitted += 1
                app.db.session.commit()
            watch()
        emitted_at = time.monotonic() - started

        def all_finished() -> bool:
            watch()
            for index, worker in enumerate(workers):
                if index != 1:
                    assert worker.proc.poll() is None, f"worker {index} exited by itself ({worker.proc.returncode})"
            return killed_at is not None and recovered_after is not None and _finished(app) >= expected

        wait_until(all_finished, 300, f"all {expected} deliveries to finish", interval=0.5)
        elapsed = time.monotonic() - started
    finally:
        receiver.stop()

    with app.app_context():
        D, A, W = state.models.Delivery, state.models.Attempt, state.models.Webhook
        rows = app.db.session.execute(
            sa.select(D.id, D.status, D.attempt_count, D.last_error, W.brand_id).join(W, W.id == D.webhook_id)
        ).all()
        attempts = dict(app.db.session.execute(sa.select(A.delivery_id, sa.func.count()).group_by(A.delivery_id)).all())
        app.db.session.remove()
    requests = json.loads((tmp_path / "receiver.json").read_text())["requests"]
    answered_ok = {r["delivery"] for r in requests if r["answer"] == 200}
    poison = [r for r in rows if r.brand_id == poison_brand["id"]]
    healthy = [r for r in rows if r.brand_id != poison_brand["id"]]
    summary = {
        "deliveries": len(rows),
        "poison": len(poison),
        "workers": MULTI_WORKERS,
        "statuses": dict(Counter(r.status for r in rows)),
        "requests": len(requests),
        "held_by_killed_worker_or_in_flight": len(held),
        "recovered_after_s": round(recovered_after or -1, 1),
        "recovery_bound_s": settings.stuck_after + settings.sweep_interval,
        "emitted_after_s": round(emitted_at),
        "seconds": round(elapsed),
    }
    record_property("three_workers_one_killed", summary)
    print(f"three workers, one killed, poison rows: {summary}")

    max_attempts = 1 + len(settings.retry_delays)
    assert len(rows) == expected and len(poison) == poison_events
    assert {r.status for r in healthy} == {"succeeded"}, summary
    assert all(r.id in answered_ok for r in healthy)
    assert not [r for r in requests if r["answer"] in (400, 401)]
    for row in poison:
        # One attempt, or two when the killed worker held it (its attempt on record as WorkerLost).
        assert row.status == "failed" and attempts.get(row.id) == row.attempt_count <= 2, row
        assert row.last_error.startswith("DecryptionError: cannot decrypt the webhook's auth_token"), row
    assert all(1 <= r.attempt_count <= max_attempts and attempts.get(r.id) == r.attempt_count for r in rows)
    # Back in the queue within the documented bound (plus 1 s: the sweep's own run time under load).
    assert recovered_after is not None and recovered_after <= settings.stuck_after + settings.sweep_interval + 1.0
