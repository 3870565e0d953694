"""Recording attempts (``flask_trakkr_webhooks/record.py``): the attempt row, the delivery's new
state, the retry scheduled at its exact time, the stored (truncated) response body.

Real Redis, a real database and a real HTTP receiver; the job functions are called directly.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq import Queue
from rq.registry import ScheduledJobRegistry

from e2e.helpers import delivery_ids as _ids
from e2e.helpers import delivery_rows as _deliveries
from e2e.helpers import emit, make_webhook
from e2e.helpers import process as _run
from e2e.receiver import Reply
from flask_trakkr_webhooks import get_state, ids


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
