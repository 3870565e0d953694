"""The delivery engine in-process: claims, concurrency caps, cancellation, retries, the sweep.

Real Redis, a real database and a real HTTP receiver; the job functions are called
directly (the worker process is covered by the end-to-end tests).
"""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from e2e.helpers import clear_queue, emit, make_webhook
from e2e.receiver import Receiver, Reply
from flask_trakkr_webhooks import delivery, dispatch, engine, get_state, ids

BASE = dict(TRAKKR_WEBHOOKS_REQUIRE_HTTPS=False, TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=True,
            TRAKKR_WEBHOOKS_TIMEOUT=2, TRAKKR_WEBHOOKS_STUCK_AFTER=5)


@pytest.fixture
def new_app(make_app):
    made = []

    def factory(**config):
        app = make_app(**{**BASE, **config})
        made.append(app)
        return app

    yield factory
    for app in made:
        clear_queue(app)


@pytest.fixture
def receiver():
    with Receiver(secret="whsec_e2e", auth=("Authorization", "Bearer tok_e2e")) as rx:
        yield rx


def _deliveries(app, **where):
    with app.app_context():
        D = get_state(app).models.Delivery
        rows = D.query.filter_by(**where).order_by(D.created_at, D.id).all()
        for row in rows:
            row.attempts  # load them while the session is open
        return rows


def _ids(app):
    return [d.id for d in _deliveries(app)]


def _run(app, delivery_ids):
    with app.app_context():
        return delivery.process_batch(get_state(app), delivery_ids)


def _update(app, delivery_id, **values):
    with app.app_context():
        state = get_state(app)
        table = state.models.Delivery.__table__
        state.db.session.execute(table.update().where(table.c.id == delivery_id).values(**values))
        state.db.session.commit()


def _queue(app):
    state = get_state(app)
    return Queue(state.settings.queue, connection=dispatch.redis_connection(state))


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
                    sa.select(m.Delivery.id, m.Webhook.url).join(m.Webhook, m.Webhook.id == m.Delivery.webhook_id)):
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


def test_a_delivery_is_claimed_once_even_by_racing_jobs(new_app, receiver):
    app = new_app()
    for _ in range(5):
        make_webhook(app, receiver.url + "/hooks")
    emit(app)
    delivery_ids = _ids(app)
    claimed: list[dict] = []
    barrier = threading.Barrier(4)

    def race():
        with app.app_context():
            barrier.wait()
            claimed.append(delivery.claim(get_state(app), delivery_ids))

    threads = [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    won = [i for result in claimed for i in result]
    assert sorted(won) == sorted(delivery_ids)  # each exactly once
    assert all(n == 1 for result in claimed for n in result.values())
    assert {d.status for d in _deliveries(app)} == {"sending"}


def test_deleted_or_inactive_webhooks_end_quietly_as_cancelled(new_app, receiver):
    app = new_app()
    gone = make_webhook(app, receiver.url + "/gone")
    paused = make_webhook(app, receiver.url + "/paused")
    emit(app)
    with app.app_context():
        W = get_state(app).models.Webhook
        W.query.filter_by(id=gone).update({"deleted_at": ids.utcnow()})
        W.query.filter_by(id=paused).update({"active": False})
        app.db.session.commit()
    counts = _run(app, _ids(app))
    assert counts == {"claimed": 2, "skipped": 2}
    rows = _deliveries(app)
    assert {d.status for d in rows} == {"cancelled"}
    assert {d.attempt_count for d in rows} == {0} and all(not d.attempts for d in rows)
    assert sorted(d.last_error for d in rows) == ["the webhook is inactive", "the webhook was deleted"]
    assert receiver.received == []


def test_a_failed_attempt_is_recorded_and_its_retry_scheduled_exactly(new_app, receiver):
    app = new_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[30, 60, 120])
    make_webhook(app, receiver.url + "/hooks")
    receiver.script(Reply(503, {"X-Reason": "maintenance"}, b"down for maintenance"))
    emit(app)
    [delivery_id] = _ids(app)
    _run(app, [delivery_id])
    [row] = _deliveries(app)
    assert row.status == "retrying" and row.attempt_count == 1 and row.last_status_code == 503
    [attempt] = row.attempts
    assert (attempt.number, attempt.outcome, attempt.status_code) == (1, "retry", 503)
    assert attempt.response_body == "down for maintenance"
    assert attempt.response_headers["X-Reason"] == "maintenance"
    assert attempt.duration_ms > 0 and attempt.started_at is not None
    due = ids.as_utc(row.next_attempt_at)
    assert ids.as_utc(attempt.next_retry_at) == due
    assert timedelta(seconds=29) < due - ids.as_utc(attempt.started_at) < timedelta(seconds=32)
    state = get_state(app)
    job_id = dispatch.redis_connection(state).hget(dispatch.jobs_key(state), delivery_id).decode()
    registry = ScheduledJobRegistry(queue=_queue(app))
    score = dispatch.redis_connection(state).zscore(registry.key, job_id)
    assert score == pytest.approx(due.timestamp(), abs=0.001)  # exact, not rounded down to the second


def test_a_retry_job_that_comes_early_does_not_claim(new_app, receiver):
    app = new_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[30])
    make_webhook(app, receiver.url + "/hooks")
    receiver.script(Reply(500))
    emit(app)
    [delivery_id] = _ids(app)
    _run(app, [delivery_id])
    assert _run(app, [delivery_id]) == {"claimed": 0, "skipped": 0}
    assert len(receiver.received) == 1


def test_the_ssrf_guard_fails_a_private_address_permanently(new_app, receiver):
    app = new_app(TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=False)
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    _run(app, _ids(app))
    [row] = _deliveries(app)
    assert row.status == "failed"
    [attempt] = row.attempts
    assert attempt.error_type == "BlockedAddress" and "loopback" in attempt.error_message
    assert "TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS" in attempt.error_message
    assert receiver.received == []


def test_connection_refused_is_retried(new_app):
    from flask_trakkr_webhooks.testing import free_port

    app = new_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[60])
    make_webhook(app, f"http://127.0.0.1:{free_port()}/hooks")
    emit(app)
    _run(app, _ids(app))
    [row] = _deliveries(app)
    assert row.status == "retrying"
    assert row.attempts[0].error_type == "ConnectionError" and row.attempts[0].status_code is None


def test_the_response_body_is_stored_truncated(new_app, receiver):
    app = new_app(TRAKKR_WEBHOOKS_RESPONSE_BODY_LIMIT=10)
    make_webhook(app, receiver.url + "/hooks")
    receiver.script(Reply(200, body=b"0123456789" * 100))
    emit(app)
    _run(app, _ids(app))
    assert _deliveries(app)[0].attempts[0].response_body == "0123456789"


def test_a_template_webhook_gets_the_rendered_body(new_app, receiver):
    app = new_app()
    make_webhook(app, receiver.url + "/hooks", provider="slack",
                 template={"text": "{{brand.name}} {{event.type}}", "score": "{{event.data.current_score}}"})
    emit(app)
    _run(app, _ids(app))
    [got] = receiver.received
    assert got.json == {"text": "Acme visibility_changed", "score": 57.5} and got.signature_ok


def test_a_stale_claim_is_taken_over_and_the_lost_attempt_recorded(new_app, receiver):
    app = new_app(TRAKKR_WEBHOOKS_STUCK_AFTER=5)
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    [delivery_id] = _ids(app)
    _update(app, delivery_id, status="sending", attempt_count=1, claimed_at=ids.utcnow() - timedelta(seconds=2))
    assert _run(app, [delivery_id]) == {"claimed": 0, "skipped": 0}  # not stale yet
    _update(app, delivery_id, claimed_at=ids.utcnow() - timedelta(seconds=6))
    assert _run(app, [delivery_id])["succeeded"] == 1
    [row] = _deliveries(app)
    assert [(a.number, a.outcome, a.error_type) for a in row.attempts] == [
        (1, "retry", "WorkerLost"), (2, "succeeded", None)]


def test_a_claim_past_the_last_attempt_gives_up(new_app, receiver):
    app = new_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[1, 2, 4])
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    [delivery_id] = _ids(app)
    _update(app, delivery_id, status="sending", attempt_count=4, claimed_at=ids.utcnow() - timedelta(seconds=60))
    _run(app, [delivery_id])
    [row] = _deliveries(app)
    assert row.status == "failed" and row.attempt_count == 4
    assert "gave up" in row.last_error
    assert [a.number for a in row.attempts] == [1, 2, 3, 4]
    assert receiver.received == []


def test_process_delivery_handles_one_delivery_alone(new_app, receiver):
    app = new_app()
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    [delivery_id] = _ids(app)
    with app.app_context():
        result = delivery.process_delivery(delivery_id)
        assert delivery.process_delivery(delivery_id) is None  # already done
    assert (result.status, result.status_code, result.attempt) == ("succeeded", 200, 1)


def test_the_job_function_needs_an_app_context():
    with pytest.raises(RuntimeError, match="TRAKKR_WEBHOOKS_APP"):
        delivery.run_batch(["dlv_x"])


# -- enqueueing and the sweep ---------------------------------------------------------------------


def _sweep(app, **kwargs):
    with app.app_context():
        return dispatch.sweep(get_state(app), **kwargs)


def test_sweep_enqueues_pending_deliveries_once(new_app, receiver):
    app = new_app()
    make_webhook(app, receiver.url + "/hooks")
    with app.app_context():
        app.webhooks.emit("visibility_changed", brand={"id": "3f2b8c1e-5d4a-4e7b-9c6d-1a2b3c4d5e6f"}, data={})
        app.db.session.info.clear()  # as if Redis had been down at commit: nothing enqueued
        app.db.session.commit()
    [delivery_id] = _ids(app)
    assert _queue(app).count == 0
    assert _sweep(app).enqueued == []  # younger than the grace period
    found = _sweep(app, pending_grace=0)
    assert (found.pending, found.enqueued) == (1, [delivery_id])
    assert _deliveries(app)[0].status == "queued"
    assert _sweep(app, pending_grace=0).enqueued == []  # its job is in the queue: not again
    assert [j.args[0] for j in _queue(app).jobs] == [[delivery_id]]


def test_sweep_replaces_a_lost_job(new_app, receiver):
    app = new_app()
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    [delivery_id] = _ids(app)
    queue = _queue(app)
    [job] = queue.jobs
    job.delete()  # lost (e.g. Redis restarted without persistence)
    found = _sweep(app, pending_grace=0)
    assert (found.lost_jobs, found.enqueued) == (1, [delivery_id])
    assert [j.args[0] for j in queue.jobs] == [[delivery_id]]


def test_sweep_requeues_a_delivery_stuck_in_sending(new_app, receiver):
    app = new_app(TRAKKR_WEBHOOKS_STUCK_AFTER=5)
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    [delivery_id] = _ids(app)
    _queue(app).empty()
    _update(app, delivery_id, status="sending", attempt_count=1, claimed_at=ids.utcnow() - timedelta(seconds=3))
    assert _sweep(app).stuck == 0
    _update(app, delivery_id, claimed_at=ids.utcnow() - timedelta(seconds=10))
    found = _sweep(app)
    assert (found.stuck, found.enqueued) == (1, [delivery_id])
    assert _sweep(app).enqueued == []  # the new job is queued: not again
    assert _run(app, [delivery_id])["succeeded"] == 1


def test_sweep_takes_an_overdue_retry_from_the_schedule(new_app, receiver):
    app = new_app(TRAKKR_WEBHOOKS_STUCK_AFTER=5)
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    [delivery_id] = _ids(app)
    queue = _queue(app)
    queue.empty()
    due = ids.utcnow() - timedelta(seconds=60)
    _update(app, delivery_id, status="retrying", attempt_count=1, next_attempt_at=due)
    with app.app_context():
        old_job = dispatch.schedule_retry(get_state(app), delivery_id, due)
    found = _sweep(app)
    assert (found.overdue_retries, found.enqueued) == (1, [delivery_id])
    registry = ScheduledJobRegistry(queue=queue)
    assert old_job not in registry.get_job_ids()
    assert Job.exists(old_job, connection=queue.connection) is False
    assert [j.args[0] for j in queue.jobs] == [[delivery_id]]


def test_sweep_leaves_retries_that_are_not_due_and_test_deliveries_alone(new_app, receiver):
    app = new_app()
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    emit(app)
    first, second = _ids(app)
    _queue(app).empty()
    _update(app, first, status="retrying", attempt_count=1, next_attempt_at=ids.utcnow() + timedelta(seconds=60))
    _update(app, second, is_test=True, status="pending", updated_at=ids.utcnow() - timedelta(hours=1))
    assert _sweep(app, pending_grace=0).enqueued == []


def test_only_one_sweeper_per_interval(new_app):
    app = new_app()
    state = get_state(app)
    assert dispatch.sweep_lock(state, 1.0) is True
    assert dispatch.sweep_lock(state, 1.0) is False


def test_enqueue_counts_jobs_per_batch(new_app):
    app = new_app(TRAKKR_WEBHOOKS_BATCH_SIZE=4)
    with app.app_context():
        jobs = dispatch.enqueue(get_state(app), [f"dlv_{i}" for i in range(10)] + ["dlv_1"])
    assert len(jobs) == 3
    assert [j.args[0] for j in _queue(app).jobs] == [
        ["dlv_0", "dlv_1", "dlv_2", "dlv_3"], ["dlv_4", "dlv_5", "dlv_6", "dlv_7"], ["dlv_8", "dlv_9"]]
    assert dispatch.job_timeout(get_state(app).settings) > 0


def test_claiming_unknown_ids_claims_nothing(new_app, receiver):
    app = new_app()
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    with app.app_context():
        state = get_state(app)
        assert delivery.claim(state, ["dlv_does_not_exist"]) == {}
        assert delivery.claim(state, []) == {}
        statuses = state.db.session.execute(sa.select(state.models.Delivery.status)).scalars().all()
    assert statuses == ["queued"]
