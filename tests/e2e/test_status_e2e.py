"""End to end: ``flask webhooks status`` (exit code and ``--json``) against a real worker, Redis and receiver.

A healthy system (a live worker, everything delivered), a stalled backlog (no worker, a delivery
waiting past the threshold), a disabled webhook (reported; unhealthy only past its threshold),
and a low success rate.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from e2e.conftest import wait_until
from e2e.helpers import delivery_ids, delivery_status, emit, make_webhook, process, update_delivery
from e2e.receiver import Reply
from flask_trakkr_webhooks import get_state, ids

pytestmark = pytest.mark.e2e


def status(app: Any, *args: str) -> tuple[int, Any]:
    """Run ``flask webhooks status [args]``; its exit code and output (parsed with ``--json``)."""
    result = app.test_cli_runner().invoke(args=["webhooks", "status", *args])
    return result.exit_code, json.loads(result.output) if "--json" in args else result.output


def test_healthy_system_exits_0(e2e_app, receiver, start_worker):
    app = e2e_app()
    make_webhook(app, receiver.url + "/hooks")
    start_worker(app)
    event_id = emit(app)
    wait_until(lambda: delivery_status(app, event_id) == "succeeded", 20, "the delivery to succeed")

    code, report = status(app, "--json")
    assert code == 0, report
    assert report["healthy"] is True and report["problems"] == []
    assert report["backlog"] == {"pending": 0, "queued": 0, "sending": 0, "retrying": 0}
    assert report["oldest_waiting_seconds"] is None
    assert len(report["workers"]) == 1
    assert report["disabled_endpoints"] == 0 and report["failing_endpoints"] == 0
    assert report["success_rate_5m"] == 1.0 and report["attempts_5m"] == 1
    assert report["thresholds"] == {
        "max_backlog_age": 300,
        "min_workers": 1,
        "min_success_rate": 0.5,
        "max_disabled_endpoints": None,
    }
    code, text = status(app)
    assert code == 0
    assert text.splitlines()[0] == "webhooks: healthy"
    assert "  live workers: 1 (" in text and "  success rate (5 min): 100.0% of 1 attempts" in text


def test_stalled_backlog_without_a_worker_exits_1(e2e_app, receiver):
    app = e2e_app(TRAKKR_WEBHOOKS_STATUS_MAX_BACKLOG_AGE=60)
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    [delivery_id] = delivery_ids(app)
    update_delivery(app, delivery_id, created_at=ids.utcnow() - timedelta(minutes=10))

    code, report = status(app, "--json")
    assert code == 1
    assert report["healthy"] is False
    assert report["backlog"]["queued"] == 1
    assert report["workers"] == []
    assert 595 <= report["oldest_waiting_seconds"] <= 700
    assert report["problems"] == [
        f"0 live workers on queue {get_state(app).settings.queue!r}, fewer than TRAKKR_WEBHOOKS_STATUS_MIN_WORKERS (1)",
        f"the oldest waiting delivery has waited {report['oldest_waiting_seconds']:.0f} s, more than "
        "TRAKKR_WEBHOOKS_STATUS_MAX_BACKLOG_AGE (60 s)",
    ]
    code, text = status(app)
    assert code == 1
    assert text.splitlines()[0] == "webhooks: UNHEALTHY"
    assert "  backlog: pending 0, queued 1, sending 0, retrying 0" in text


def test_a_due_retry_counts_as_waiting_since_it_came_due(e2e_app, receiver):
    app = e2e_app(TRAKKR_WEBHOOKS_STATUS_MIN_WORKERS=0, TRAKKR_WEBHOOKS_STATUS_MAX_BACKLOG_AGE=60)
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    [delivery_id] = delivery_ids(app)
    due = ids.utcnow() - timedelta(seconds=120)
    update_delivery(app, delivery_id, status="retrying", next_attempt_at=due, created_at=due - timedelta(hours=1))
    code, report = status(app, "--json")
    assert code == 1
    assert 115 <= report["oldest_waiting_seconds"] <= 200
    update_delivery(app, delivery_id, next_attempt_at=ids.utcnow() + timedelta(minutes=5))  # not due yet
    code, report = status(app, "--json")
    assert code == 0 and report["oldest_waiting_seconds"] is None and report["backlog"]["retrying"] == 1


def test_a_disabled_webhook_is_reported_and_unhealthy_only_past_its_threshold(e2e_app, receiver):
    config = dict(TRAKKR_WEBHOOKS_STATUS_MIN_WORKERS=0)
    app = e2e_app(**config)
    hook_id = make_webhook(app, receiver.url + "/gone", active=False, disabled_reason="the endpoint answered 410 Gone")
    make_webhook(app, receiver.url + "/failing", consecutive_failures=3, failing_since=ids.utcnow())

    code, report = status(app, "--json")
    assert code == 0, report
    assert report["disabled_endpoints"] == 1 and report["failing_endpoints"] == 1
    assert [(w["id"], w["disabled_reason"]) for w in report["disabled"]] == [
        (hook_id, "the endpoint answered 410 Gone")
    ]
    assert [w["consecutive_failures"] for w in report["failing"]] == [3]

    strict = e2e_app(**config, TRAKKR_WEBHOOKS_STATUS_MAX_DISABLED_ENDPOINTS=0)  # the same database
    code, report = status(strict, "--json")
    assert code == 1
    assert report["problems"] == [
        "1 webhooks are disabled, more than TRAKKR_WEBHOOKS_STATUS_MAX_DISABLED_ENDPOINTS (0)"
    ]
    code, text = status(strict)
    assert code == 1 and "the endpoint answered 410 Gone" in text


def test_a_low_success_rate_exits_1(e2e_app, receiver):
    app = e2e_app(TRAKKR_WEBHOOKS_STATUS_MIN_WORKERS=0, TRAKKR_WEBHOOKS_RETRY_DELAYS=[])
    make_webhook(app, receiver.url + "/hooks")
    receiver.script(Reply(500), Reply(500), Reply(500))
    for _ in range(4):
        emit(app)
    process(app, delivery_ids(app))
    code, report = status(app, "--json")
    assert code == 1
    assert report["success_rate_5m"] == 0.25 and report["attempts_5m"] == 4
    assert report["problems"] == [
        "25% of 4 attempts in the last 5 minutes succeeded, less than TRAKKR_WEBHOOKS_STATUS_MIN_SUCCESS_RATE (50%)"
    ]
