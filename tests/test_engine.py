"""The delivery engine (``flask_trakkr_webhooks/engine.py``) in-process: concurrency caps (per
host and global), deliveries kept in flight across jobs, when a job returns.

Real Redis, a real database and a real HTTP receiver; the job functions are called
directly (the worker process is covered by the end-to-end tests).
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from e2e.helpers import delivery_ids as _ids
from e2e.helpers import delivery_rows as _deliveries
from e2e.helpers import emit, make_webhook
from e2e.helpers import process as _run
from e2e.receiver import Receiver, Reply
from flask_trakkr_webhooks import engine, get_state


@pytest.fixture
def new_app_config():
    """What ``new_app`` adds to every app of this module: a short stuck-claim time."""
    return {"TRAKKR_WEBHOOKS_STUCK_AFTER": 5}


def test_a_batch_runs_concurrently_within_the_per_host_cap(new_app, receiver):
    app = new_app(TRAKKR_WEBHOOKS_CONCURRENCY=8, TRAKKR_WEBHOOKS_PER_HOST_CONCURRENCY=3)
    receiver.default = Reply(200, delay=0.3)
    for _ in range(9):
        make_webhook(app, receiver.url + "/hooks")
    emit(app)
    started = time.monotonic()
    counts = _run(app, _ids(app))
    elapsed = time.monotonic() - started
    assert counts["succeeded"] == 9
    assert receiver.max_in_flight == 3
    assert 0.85 < elapsed < 2.0  # three waves of 0.3 s, not nine
    assert all(r.signature_ok and r.auth_ok for r in receiver.received)


def test_the_global_cap_holds_across_hosts(new_app):
    app = new_app(TRAKKR_WEBHOOKS_CONCURRENCY=4, TRAKKR_WEBHOOKS_PER_HOST_CONCURRENCY=3)
    with Receiver() as a, Receiver() as b:
        a.default = b.default = Reply(200, delay=0.3)
        for rx in (a, b):
            for _ in range(4):
                make_webhook(app, rx.url + "/hooks")
        emit(app)
        started = time.monotonic()
        counts = _run(app, _ids(app))
        elapsed = time.monotonic() - started
    assert counts["succeeded"] == 8
    assert a.max_in_flight <= 3 and b.max_in_flight <= 3
    assert a.max_in_flight + b.max_in_flight >= 4  # both hosts were served side by side
    assert 0.55 < elapsed < 1.6  # two waves of four


def test_the_engine_keeps_deliveries_in_flight_across_jobs(new_app):
    app = new_app(TRAKKR_WEBHOOKS_CONCURRENCY=6, TRAKKR_WEBHOOKS_PER_HOST_CONCURRENCY=3)
    with Receiver() as a, Receiver() as b:
        a.default = b.default = Reply(200, delay=0.5)
        for rx in (a, b):
            for _ in range(3):
                make_webhook(app, rx.url + "/hooks")
        emit(app)
        by_host: dict[str, list[str]] = {}
        with app.app_context():
            m = get_state(app).models
            for delivery_id, url in app.db.session.execute(
                sa.select(m.Delivery.id, m.Webhook.url).join(m.Webhook, m.Webhook.id == m.Delivery.webhook_id)
            ):
                by_host.setdefault(url.split("/hooks")[0], []).append(delivery_id)
        running = engine.start(app)
        try:
            started = time.monotonic()
            with app.app_context():
                first = engine.run(running, by_host[a.url])
                second = engine.run(running, by_host[b.url])
            handed_off = time.monotonic() - started
            assert first == second == {"claimed": 3, "skipped": 0, "sending": 3}
            assert handed_off < 0.4  # neither job waited for its attempts
            assert running.wait_idle(10)
        finally:
            running.stop(timeout=5)
        assert a.max_in_flight == 3 and b.max_in_flight == 3
        assert time.monotonic() - started < 1.4  # both jobs' attempts overlapped
    assert {d.status for d in _deliveries(app)} == {"succeeded"}
    assert engine.current(get_state(app)) is None


def test_a_job_returns_once_its_backlog_is_one_wave_per_host(new_app):
    # Six deliveries to one host capped at two: the job hands off once no more than two
    # wait (one wave), not after all six started, and never exceeds the cap meanwhile.
    app = new_app(TRAKKR_WEBHOOKS_CONCURRENCY=4, TRAKKR_WEBHOOKS_PER_HOST_CONCURRENCY=2)
    with Receiver() as rx:
        rx.default = Reply(200, delay=0.4)
        for _ in range(6):
            make_webhook(app, rx.url + "/hooks")
        emit(app)
        running = engine.start(app)
        try:
            started = time.monotonic()
            with app.app_context():
                counts = engine.run(running, _ids(app))
            handed_off = time.monotonic() - started
            assert counts == {"claimed": 6, "skipped": 0, "sending": 6}
            assert 0.3 < handed_off < 0.75  # after the first wave, with two still waiting
            assert running.in_flight >= 2
            assert running.wait_idle(10)
        finally:
            running.stop(timeout=5)
        assert rx.max_in_flight == 2
    assert {d.status for d in _deliveries(app)} == {"succeeded"}
