"""Recording attempts (``flask_trakkr_webhooks/record.py``): the attempt row, the delivery's new
state, the retry scheduled at its exact time, the stored (truncated) response body.

Real Redis, a real database and a real HTTP receiver; the job functions are called directly.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from rq import Queue
from rq.registry import ScheduledJobRegistry

from e2e.helpers import delivery_ids as _ids
from e2e.helpers import delivery_rows as _deliveries
from e2e.helpers import emit, make_webhook
from e2e.helpers import process as _run
from e2e.receiver import Reply
from flask_trakkr_webhooks import attempt, claim, get_state, ids, record


@pytest.fixture
def new_app_config():
    """What ``new_app`` adds to every app of this module: a short stuck-claim time."""
    return {"TRAKKR_WEBHOOKS_STUCK_AFTER": 5}


def _queue(app):
    state = get_state(app)
    return Queue(state.settings.queue, connection=state.redis())


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
    job_id = state.redis().hget(state.jobs_key, delivery_id).decode()
    registry = ScheduledJobRegistry(queue=_queue(app))
    score = state.redis().zscore(registry.key, job_id)
    assert score == pytest.approx(due.timestamp(), abs=0.001)  # exact, not rounded down to the second


def test_the_response_body_is_stored_truncated(new_app, receiver):
    app = new_app(TRAKKR_WEBHOOKS_RESPONSE_BODY_LIMIT=10)
    make_webhook(app, receiver.url + "/hooks")
    receiver.script(Reply(200, body=b"0123456789" * 100))
    emit(app)
    _run(app, _ids(app))
    assert _deliveries(app)[0].attempts[0].response_body == "0123456789"


def test_a_delivery_deleted_mid_batch_does_not_fail_the_group(new_app, receiver):
    # Deleted between the claim and the record: the others are recorded, the deleted one gets
    # no (orphan) attempt row, and recording does not raise.
    app = new_app()
    for _ in range(3):
        make_webhook(app, receiver.url + "/hooks")
    emit(app)
    with app.app_context():
        state = get_state(app)
        works = claim.prepare(state, _ids(app))
        outcomes = [attempt.perform(state, w) for w in works]
        gone = works[0].delivery_id
        table = state.models.Delivery.__table__
        state.db.session.execute(table.delete().where(table.c.id == gone))
        state.db.session.commit()
        results = record.record(state, outcomes)
        orphans = state.db.session.execute(
            sa.select(sa.func.count()).where(state.models.Attempt.delivery_id == gone)
        ).scalar()
    assert len(results) == 3 and orphans == 0
    rows = _deliveries(app)
    assert [d.status for d in rows] == ["succeeded", "succeeded"] and all(len(d.attempts) == 1 for d in rows)
