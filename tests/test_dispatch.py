"""Getting deliveries into RQ (``flask_trakkr_webhooks/dispatch.py``): enqueueing in batches and
the sweep (pending deliveries, lost jobs, stuck deliveries, overdue retries, one sweeper per interval).

Real Redis and a real database.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.utils import utcformat
from rq.worker import Worker

from e2e.helpers import delivery_ids as _ids
from e2e.helpers import delivery_rows as _deliveries
from e2e.helpers import emit, make_webhook
from e2e.helpers import process as _run
from e2e.helpers import update_delivery as _update
from flask_trakkr_webhooks import claim, dispatch, get_state, ids


@pytest.fixture
def new_app_config():
    """What ``new_app`` adds to every app of this module: a short stuck-claim time."""
    return {"TRAKKR_WEBHOOKS_STUCK_AFTER": 5}


def _queue(app):
    state = get_state(app)
    return Queue(state.settings.queue, connection=state.redis())


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
        ["dlv_0", "dlv_1", "dlv_2", "dlv_3"],
        ["dlv_4", "dlv_5", "dlv_6", "dlv_7"],
        ["dlv_8", "dlv_9"],
    ]
    assert dispatch.job_timeout(get_state(app).settings) > 0


# -- recovery after a worker death, exact accounting ---------------------------------------------------


def _start_job(app, job, worker_name, started_at):
    """Do to ``job`` what RQ does when a worker takes it (without running it)."""
    queue = _queue(app)
    queue.remove(job.id)
    job.connection.hset(
        job.key, mapping={"status": "started", "started_at": utcformat(started_at), "worker_name": worker_name}
    )


def test_sweep_treats_a_started_job_whose_worker_is_gone_as_lost(new_app, receiver):
    # A worker SIGKILLed after RQ handed it a job, before its claim committed: the deliveries
    # stay `queued` and the job `started`. Its worker's key gone, or the job started more than
    # STUCK_AFTER ago with nothing claimed: lost, so it is re-enqueued within the bound.
    app = new_app(TRAKKR_WEBHOOKS_STUCK_AFTER=5)
    make_webhook(app, receiver.url + "/hooks")
    for _ in range(3):
        emit(app)
    dead, old, running = _ids(app)
    jobs = {j.args[0][0]: j for j in _queue(app).jobs}
    conn = get_state(app).redis()
    worker_key = Worker.redis_worker_namespace_prefix + "alive-worker"
    conn.set(worker_key, "1", ex=60)
    try:
        now = ids.utcnow()
        _start_job(app, jobs[dead], "killed-worker", now)  # no worker key: the worker is gone
        _start_job(app, jobs[old], "alive-worker", now - timedelta(seconds=6))  # started > STUCK_AFTER ago
        _start_job(app, jobs[running], "alive-worker", now)  # alive and recent: still running
        found = _sweep(app, pending_grace=0)
    finally:
        conn.delete(worker_key)
    assert (found.lost_jobs, sorted(found.enqueued)) == (2, sorted([dead, old]))
    assert sorted(d for j in _queue(app).jobs for d in j.args[0]) == sorted([dead, old])
    assert _run(app, [dead, old])["succeeded"] == 2


def test_sweep_counts_no_lost_job_for_a_delivery_claimed_while_it_read_redis(new_app, receiver, monkeypatch):
    # The race without any fault: the sweep reads a `queued` row, a worker claims it and drops
    # its queue record, then the sweep reads Redis and finds no job. Nothing is lost.
    app = new_app()
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    [delivery_id] = _ids(app)
    _update(app, delivery_id, updated_at=ids.utcnow() - timedelta(minutes=5))
    state = get_state(app)
    conn = state.redis()
    real_hmget = type(conn).hmget

    def hmget(self, name, *args, **kwargs):
        if name == state.jobs_key:  # the worker wins the race here
            assert claim.claim(state, [delivery_id]) == {delivery_id: 1}
            dispatch.forget(state, [delivery_id])
        return real_hmget(self, name, *args, **kwargs)

    monkeypatch.setattr(type(conn), "hmget", hmget)
    found = _sweep(app)
    assert found.as_dict() == {"pending": 0, "lost_jobs": 0, "stuck": 0, "overdue_retries": 0, "enqueued": 0}
    assert _deliveries(app)[0].status == "sending"


def test_a_backlog_of_queued_rows_does_not_crowd_stuck_claims_out_of_the_sweep(new_app, receiver, monkeypatch):
    # Under a backlog, old `queued` rows whose jobs still wait fill the sweep's limit; a claim
    # left by a dead worker must still be found within STUCK_AFTER + SWEEP_INTERVAL.
    app = new_app(TRAKKR_WEBHOOKS_STUCK_AFTER=5)
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    emit(app)
    waiting, held = _ids(app)  # `waiting` is older and its job is still queued
    _update(app, waiting, updated_at=ids.utcnow() - timedelta(minutes=5))
    _update(app, held, status="sending", attempt_count=1, claimed_at=ids.utcnow() - timedelta(seconds=10))
    dispatch.forget(get_state(app), [held])  # as its claim did
    monkeypatch.setattr(dispatch, "SWEEP_LIMIT", 1)
    found = _sweep(app)
    assert (found.stuck, found.enqueued) == (1, [held])


def _backlog_with_a_lost_job_last(app, queued: int) -> str:
    """``queued`` old deliveries whose jobs still wait, then one whose job is gone; its id."""
    make_webhook(app, "https://hooks.example.com/in")
    for _ in range(queued + 1):
        emit(app)
    rows = sorted(_deliveries(app), key=lambda d: (d.created_at, d.id))
    for row in rows:
        _update(app, row.id, updated_at=ids.utcnow() - timedelta(minutes=5))
    lost = rows[-1].id
    dispatch.forget(get_state(app), [lost])  # its job vanished from Redis
    return lost


def test_a_sweep_past_its_limit_hands_back_a_cursor_that_reaches_the_rest(new_app, monkeypatch):
    # More still-queued rows than the limit used to hide every forgotten delivery behind them.
    app = new_app()
    lost = _backlog_with_a_lost_job_last(app, queued=2)
    monkeypatch.setattr(dispatch, "SWEEP_LIMIT", 2)
    first = _sweep(app)
    assert first.enqueued == [] and first.next is not None and first.next.phase == "unclaimed"
    second = _sweep(app, after=first.next)
    assert (second.lost_jobs, second.enqueued) == (1, [lost])
    assert second.next is None  # a page short of the limit: nothing past it
    with app.app_context():
        assert dispatch.sweep_all(get_state(app)).enqueued == []  # now queued again, not lost


def test_dispatch_command_walks_every_page(new_app, monkeypatch):
    app = new_app()
    lost = _backlog_with_a_lost_job_last(app, queued=4)
    monkeypatch.setattr(dispatch, "SWEEP_LIMIT", 2)
    out = app.test_cli_runner().invoke(args=["webhooks", "dispatch"])
    assert out.exit_code == 0, out.output
    assert "enqueued 1 deliveries" in out.output and "lost jobs 1" in out.output
    assert _deliveries(app)[-1].status == "queued"
    with app.app_context():
        assert get_state(app).redis().hget(get_state(app).jobs_key, lost) is not None


def test_periodic_sweeps_go_on_from_the_cursor_left_in_redis(new_app, monkeypatch):
    app = new_app()
    lost = _backlog_with_a_lost_job_last(app, queued=2)
    monkeypatch.setattr(dispatch, "SWEEP_LIMIT", 2)
    with app.app_context():
        state = get_state(app)
        first = dispatch.periodic_sweep(state)
        assert first.enqueued == [] and state.redis().get(state.sweep_cursor_key) is not None
        second = dispatch.periodic_sweep(state)  # any worker: the cursor is in Redis
        assert second.enqueued == [lost]
        assert state.redis().get(state.sweep_cursor_key) is None  # done: the next one starts over
        state.redis().set(state.sweep_cursor_key, b"not json")
        assert dispatch.periodic_sweep(state).next is not None  # unreadable cursor: from the start


def test_a_cursor_within_stuck_claims_reads_on_through_them(new_app, monkeypatch):
    app = new_app()
    make_webhook(app, "https://hooks.example.com/in")
    for _ in range(3):
        emit(app)
    rows = sorted(_deliveries(app), key=lambda d: (d.created_at, d.id))
    for row in rows:
        _update(app, row.id, status="sending", attempt_count=1, claimed_at=ids.utcnow() - timedelta(seconds=60))
    dispatch.forget(get_state(app), [r.id for r in rows])
    monkeypatch.setattr(dispatch, "SWEEP_LIMIT", 2)
    first = _sweep(app)
    assert first.stuck == 2 and first.next is not None and first.next.phase == "claimed"
    second = _sweep(app, after=first.next)
    assert second.enqueued == [rows[-1].id]
