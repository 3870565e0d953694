"""The delivery engine (``flask_trakkr_webhooks/engine.py``) in-process: concurrency caps (per
host and global), deliveries kept in flight across jobs, when a job returns.

Real Redis, a real database and a real HTTP receiver; the job functions are called
directly (the worker process is covered by the end-to-end tests).
"""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from e2e.helpers import delivery_ids as _ids
from e2e.helpers import delivery_rows as _deliveries
from e2e.helpers import emit, make_webhook
from e2e.helpers import process as _run
from e2e.receiver import Receiver, Reply
from flask_trakkr_webhooks import claim, engine, get_state, ids


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


def test_a_job_clears_the_queue_record_of_what_it_handed_off(new_app, receiver):
    # The record (which deliveries have a job in Redis) is cleared after the hand-off, off the
    # latency path; left behind, it would keep the sweep from re-enqueueing them if lost.
    app = new_app()
    for _ in range(3):
        make_webhook(app, receiver.url + "/hooks")
    emit(app)  # the commit enqueued a job and recorded its deliveries
    delivery_ids = _ids(app)
    state = get_state(app)
    assert None not in state.redis().hmget(state.jobs_key, delivery_ids)
    running = engine.start(app)
    try:
        with app.app_context():
            assert engine.run(running, delivery_ids)["sending"] == 3
        assert state.redis().hmget(state.jobs_key, delivery_ids) == [None, None, None]
        assert running.wait_idle(10)
    finally:
        running.stop(timeout=5)
    assert {d.status for d in _deliveries(app)} == {"succeeded"}


# -- one bad delivery fails alone ----------------------------------------------------------------------


def test_an_attempt_that_raises_fails_its_delivery_alone(new_app, receiver, monkeypatch):
    # Whatever raises while building or sending (a host formatter, a template, a bug) ends that
    # delivery `failed` with the reason and an attempt on record; the batch is delivered.
    app = new_app()
    poison = make_webhook(app, receiver.url + "/poison")
    for _ in range(3):
        make_webhook(app, receiver.url + "/hooks")
    emit(app)
    real = engine.perform

    def perform(state, work):
        if work.endpoint.url.endswith("/poison"):
            raise RecursionError("maximum recursion depth exceeded while rendering")
        return real(state, work)

    monkeypatch.setattr(engine, "perform", perform)
    counts = _run(app, _ids(app))
    assert counts == {"claimed": 4, "skipped": 0, "succeeded": 3, "failed": 1}
    rows = {d.webhook_id: d for d in _deliveries(app)}
    bad = rows.pop(poison)
    assert (bad.status, bad.attempt_count) == ("failed", 1)
    assert (
        bad.last_error
        == "RecursionError: the request could not be built or sent: maximum recursion depth exceeded while rendering"
    )
    assert [(a.number, a.outcome, a.error_type) for a in bad.attempts] == [(1, "failed", "RecursionError")]
    assert {d.status for d in rows.values()} == {"succeeded"}


def test_a_row_that_cannot_be_recorded_does_not_stall_its_group(new_app, receiver, monkeypatch):
    app = new_app()
    for _ in range(4):
        make_webhook(app, receiver.url + "/hooks")
    emit(app)
    doomed = _ids(app)[0]
    real = engine.record

    def record(state, outcomes):
        # The doomed delivery's attempt breaks the write (as a value the database refuses would).
        if any(o.work.delivery_id == doomed and o.answer.error_type != "RecordError" for o in outcomes):
            raise sa.exc.DataError("INSERT", {}, Exception("invalid byte sequence"))
        return real(state, outcomes)

    monkeypatch.setattr(engine, "record", record)
    counts = _run(app, _ids(app))
    assert counts == {"claimed": 4, "skipped": 0, "succeeded": 3, "failed": 1}
    rows = {d.id: d for d in _deliveries(app)}
    bad = rows.pop(doomed)
    assert bad.status == "failed" and bad.attempt_count == 1
    assert bad.last_error.startswith("RecordError: the attempt could not be recorded")
    assert [a.error_type for a in bad.attempts] == ["RecordError"]
    assert {d.status for d in rows.values()} == {"succeeded"}


def test_a_claim_older_than_stuck_after_is_not_sent(new_app, receiver):
    # It may belong to another worker by now, and it carries the webhook as it was at the claim
    # (URL, credentials, secret): left `sending` for the sweep, whose fresh claim reads it anew.
    app = new_app(TRAKKR_WEBHOOKS_STUCK_AFTER=5)
    make_webhook(app, receiver.url + "/hooks")
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    with app.app_context():
        state = get_state(app)
        stale, fresh = claim.prepare(state, _ids(app))
        stale = dataclasses.replace(stale, claimed_at=ids.utcnow() - timedelta(seconds=6))
        running = engine.Engine(None, state, recorder=False)
        try:
            running.submit([stale, fresh])
            groups = list(running.record_here())
        finally:
            running.stop(timeout=0)
    assert [r.delivery_id for _, results in groups for r in results] == [fresh.delivery_id]
    rows = {d.id: d for d in _deliveries(app)}
    assert rows[stale.delivery_id].status == "sending" and rows[fresh.delivery_id].status == "succeeded"
    assert len(receiver.received) == 1


def test_a_transient_database_error_is_retried_and_never_fails_a_delivery(new_app, receiver, monkeypatch):
    # SQLite's "database is locked" (or a dropped connection) says nothing about the rows: the
    # group is recorded again, not turned into permanent failures.
    app = new_app()
    for _ in range(3):
        make_webhook(app, receiver.url + "/hooks")
    emit(app)
    real = engine.record
    calls = []

    def record(state, outcomes):
        calls.append(len(outcomes))
        if len(calls) == 1:
            raise sa.exc.OperationalError("UPDATE", {}, Exception("database is locked"))
        return real(state, outcomes)

    monkeypatch.setattr(engine, "record", record)
    counts = _run(app, _ids(app))
    assert counts == {"claimed": 3, "skipped": 0, "succeeded": 3}
    assert {d.status for d in _deliveries(app)} == {"succeeded"}
