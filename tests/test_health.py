"""Endpoint health (``flask_trakkr_webhooks/health.py``): 410 Gone disables at once, a failing
streak disables after N deliveries over T hours, a success resets the streak, the host is told
after the commit.

In-process with real Redis, a real database and a real HTTP receiver on 127.0.0.1: the delivery
functions are called directly (the worker process is covered in ``e2e/test_security_e2e.py``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import sqlalchemy as sa

from e2e.helpers import emit, make_webhook
from e2e.receiver import Reply
from flask_trakkr_webhooks import attempt, claim, get_state, health, ids, jobs, record


@pytest.fixture
def new_app_config():
    """What ``new_app`` adds to every app of this module: retries due at once."""
    return {"TRAKKR_WEBHOOKS_RETRY_DELAYS": [0, 0, 0]}


T0 = ids.utcnow()


def _deliveries(app, event_id=None):
    with app.app_context():
        D = get_state(app).models.Delivery
        query = D.query.order_by(D.created_at, D.id)
        if event_id:
            query = query.filter_by(event_id=event_id)
        return [(d.id, d.status, d.last_error) for d in query.all()]


def _hook(app, webhook_id):
    with app.app_context():
        state = get_state(app)
        state.db.session.expire_all()
        row = state.db.session.get(state.models.Webhook, webhook_id)
        return dict(
            active=row.active,
            reason=row.disabled_reason,
            at=row.disabled_at,
            failures=row.consecutive_failures,
            since=row.failing_since,
        )


def _deliver(app, event_id):
    """Every attempt of the deliveries of ``event_id`` (retries are due at once: delays 0)."""
    for _ in range(5):
        open_ids = [
            d for d, status, _ in _deliveries(app, event_id) if status not in ("succeeded", "failed", "cancelled")
        ]
        if not open_ids:
            return
        with app.app_context():
            jobs.process_batch(get_state(app), open_ids)
    raise AssertionError("deliveries did not finish")


def _set(app, webhook_id, **values):
    with app.app_context():
        state = get_state(app)
        table = state.models.Webhook.__table__
        state.db.session.execute(table.update().where(table.c.id == webhook_id).values(**values))
        state.db.session.commit()


# -- 410 Gone ----------------------------------------------------------------------------------------


def test_410_gone_disables_at_once_cancels_open_deliveries_and_tells_the_host(new_app, plain_receiver):
    app = new_app()
    seen = []

    @app.webhooks.on_disabled
    def tell_owner(webhook):
        # After the commit: another connection already sees it disabled.
        with app.db.engine.connect() as conn:
            committed = conn.execute(
                sa.text("SELECT active FROM trakkr_webhooks WHERE id = :id"), {"id": webhook.id}
            ).scalar_one()
        seen.append(("handler", webhook.id, webhook.active, bool(committed), webhook.disabled_reason))

    def on_signal(sender, webhook, reason):
        seen.append(("signal", sender is app, webhook.id, reason))

    health.webhook_disabled.connect(on_signal)
    try:
        hook = make_webhook(app, plain_receiver.url + "/gone")
        plain_receiver.script(Reply(410, body=b"gone"))
        first, second = emit(app), emit(app)
        _deliver(app, first)
    finally:
        health.webhook_disabled.disconnect(on_signal)

    state = _hook(app, hook)
    assert state["active"] is False and state["at"] is not None
    assert state["reason"].startswith("the endpoint answered 410 Gone to delivery dlv_")
    [(_, status, _)] = _deliveries(app, first)
    assert status == "failed"
    [(_, status, error)] = _deliveries(app, second)
    assert status == "cancelled" and error.startswith("cancelled: the webhook was disabled (the endpoint answered 410")
    assert len(plain_receiver.received) == 1  # the 410 is not retried and nothing else is sent
    assert seen == [("handler", hook, False, False, state["reason"]), ("signal", True, hook, state["reason"])]


def test_a_410_to_a_test_send_does_not_disable(new_app, plain_receiver):
    app = new_app()
    hook = make_webhook(app, plain_receiver.url + "/gone")
    plain_receiver.default = Reply(410)
    result = app.test_client().post(f"/webhooks/{hook}/test").get_json()
    assert result["status_code"] == 410 and result["success"] is False
    assert _hook(app, hook)["active"] is True and _hook(app, hook)["failures"] == 0


# -- failing streaks ---------------------------------------------------------------------------------


def test_n_failed_deliveries_in_a_row_disable_when_they_span_the_hours(new_app, plain_receiver):
    app = new_app(TRAKKR_WEBHOOKS_DISABLE_AFTER_FAILURES=3, TRAKKR_WEBHOOKS_DISABLE_AFTER_HOURS=24)
    hook = make_webhook(app, plain_receiver.url + "/down")
    plain_receiver.default = Reply(500)
    for n in (1, 2, 3):
        _deliver(app, emit(app))
        state = _hook(app, hook)
        assert state["failures"] == n and state["active"] is True  # 3 in a row but not 24 hours yet
    assert len(plain_receiver.received) == 3 * 4  # every attempt was made; streaks count deliveries
    _set(app, hook, failing_since=ids.utcnow() - timedelta(hours=25))
    _deliver(app, emit(app))
    state = _hook(app, hook)
    assert state["active"] is False
    assert state["reason"].startswith("4 deliveries in a row failed over 25.0 hours (since ")
    assert state["reason"].endswith("; last: HTTP 500")


def test_with_zero_hours_the_count_alone_disables(new_app, plain_receiver):
    app = new_app(
        TRAKKR_WEBHOOKS_DISABLE_AFTER_FAILURES=2, TRAKKR_WEBHOOKS_DISABLE_AFTER_HOURS=0, TRAKKR_WEBHOOKS_RETRY_DELAYS=[]
    )
    hook = make_webhook(app, plain_receiver.url + "/down")
    plain_receiver.default = Reply(404)
    _deliver(app, emit(app))
    assert _hook(app, hook)["active"] is True
    _deliver(app, emit(app))
    state = _hook(app, hook)
    assert state["active"] is False and state["reason"].startswith("2 deliveries in a row failed over 0.0 hours")


def test_a_success_resets_the_streak_and_retried_successes_count_as_successes(new_app, plain_receiver):
    app = new_app(TRAKKR_WEBHOOKS_DISABLE_AFTER_FAILURES=3, TRAKKR_WEBHOOKS_DISABLE_AFTER_HOURS=0)
    hook = make_webhook(app, plain_receiver.url + "/flaky")
    plain_receiver.script(*[Reply(500)] * 8)
    _deliver(app, emit(app))
    _deliver(app, emit(app))
    assert _hook(app, hook)["failures"] == 2 and _hook(app, hook)["since"] is not None
    plain_receiver.script(Reply(500), Reply(503), Reply(200))  # attempts fail, the delivery succeeds
    _deliver(app, emit(app))
    state = _hook(app, hook)
    assert state["failures"] == 0 and state["since"] is None and state["active"] is True
    plain_receiver.default = Reply(400)
    for _ in range(2):
        _deliver(app, emit(app))
    assert _hook(app, hook)["active"] is True  # the streak restarted: 2 < 3
    _deliver(app, emit(app))
    assert _hook(app, hook)["active"] is False


def test_zero_failures_setting_turns_the_streak_rule_off(new_app, plain_receiver):
    app = new_app(
        TRAKKR_WEBHOOKS_DISABLE_AFTER_FAILURES=0, TRAKKR_WEBHOOKS_DISABLE_AFTER_HOURS=0, TRAKKR_WEBHOOKS_RETRY_DELAYS=[]
    )
    hook = make_webhook(app, plain_receiver.url + "/down")
    plain_receiver.default = Reply(500)
    for _ in range(3):
        _deliver(app, emit(app))
    assert _hook(app, hook)["active"] is True and _hook(app, hook)["failures"] == 3


def test_a_failing_handler_is_logged_and_the_delivery_still_recorded(new_app, plain_receiver, caplog):
    app = new_app()

    @app.webhooks.on_disabled
    def broken(webhook):
        raise RuntimeError("mail server down")

    called = []
    app.webhooks.on_disabled(lambda webhook: called.append(webhook.id))
    hook = make_webhook(app, plain_receiver.url + "/gone")
    plain_receiver.default = Reply(410)
    with caplog.at_level(logging.ERROR, logger="flask_trakkr_webhooks"):
        event = emit(app)
        _deliver(app, event)
    assert _deliveries(app, event)[0][1] == "failed"
    assert called == [hook]  # the next handler still ran
    assert "an on_disabled handler failed for webhook " + hook in caplog.text


def test_re_enabling_clears_the_state_and_deliveries_flow_again(new_app, plain_receiver):
    app = new_app()
    hook = make_webhook(app, plain_receiver.url + "/back")
    plain_receiver.script(Reply(410))
    _deliver(app, emit(app))
    assert _hook(app, hook)["active"] is False
    missed = emit(app)
    assert _deliveries(app, missed) == []  # emit skips an inactive webhook
    body = app.test_client().patch(f"/webhooks/{hook}", json={"active": True}).get_json()
    assert body["active"] is True and body["disabled_reason"] is None and body["disabled_at"] is None
    assert body["consecutive_failures"] == 0 and body["failing_since"] is None
    event = emit(app)
    _deliver(app, event)
    assert _deliveries(app, event)[0][1] == "succeeded"


def test_disable_is_once_only(new_app):
    app = new_app()
    hook = make_webhook(app, "http://127.0.0.1:9/x")
    with app.app_context():
        state = get_state(app)
        assert health.disable(state, hook, "first") is True
        assert health.disable(state, hook, "second") is False  # a concurrent worker loses the race
        state.db.session.commit()
    assert _hook(app, hook)["reason"] == "first"


# -- the pure rules ----------------------------------------------------------------------------------


def _f(webhook, ok, minute, code=None):
    return health.Finished(
        webhook_id=webhook,
        delivery_id=f"dlv_{webhook}{minute}",
        succeeded=ok,
        at=T0 + timedelta(minutes=minute),
        status_code=code,
    )


def test_streaks_follow_time_order_within_a_group():
    got = {
        s.webhook_id: s
        for s in health.streaks(
            [
                _f("b", False, 3),
                _f("a", False, 1),
                _f("a", True, 2),
                _f("a", False, 4, 410),
                _f("a", False, 5),
                _f("c", True, 1),
                _f("b", False, 2),
            ]
        )
    }
    assert list(got) == ["a", "b", "c"]  # id order: the lock order
    assert (got["a"].reset, got["a"].failures, got["a"].first_failure_at) == (True, 2, T0 + timedelta(minutes=4))
    assert got["a"].gone.delivery_id == "dlv_a4" and got["a"].last.delivery_id == "dlv_a5"
    assert (got["b"].reset, got["b"].failures, got["b"].first_failure_at) == (False, 2, T0 + timedelta(minutes=2))
    assert (got["c"].reset, got["c"].failures, got["c"].last, got["c"].gone) == (True, 0, None, None)
    # A 410 before the last success no longer counts.
    assert health.streaks([_f("d", False, 1, 410), _f("d", True, 2)])[0].gone is None


@pytest.mark.parametrize(
    "failures,hours_ago,expected",
    [
        (15, 24, True),
        (14, 48, False),
        (15, 23.9, False),
        (100, 25, True),
        (15, None, False),
    ],
)
def test_the_streak_rule_needs_both_count_and_span(failures, hours_ago, expected):
    since = None if hours_ago is None else T0 - timedelta(hours=hours_ago)
    assert health.should_disable(failures, since, T0, after_failures=15, after_hours=24) is expected
    assert health.should_disable(failures, since, T0, after_failures=0, after_hours=0) is False


def test_a_delivery_recorded_by_two_workers_counts_once(new_app, receiver):
    # Worker A's claim goes stale and worker B takes the delivery over; both send and both
    # record. Only B's conditional UPDATE matches, so the streak counts the delivery once.
    app = new_app()
    receiver.default = Reply(400)  # a permanent failure: each attempt finishes the delivery
    hook = make_webhook(app, receiver.url + "/hooks")
    emit(app)
    with app.app_context():
        state = get_state(app)
        [delivery_id] = [d for d, _, _ in _deliveries(app)]
        works_a = claim.prepare(state, [delivery_id])
        outcome_a = attempt.perform(state, works_a[0])
        table = state.models.Delivery.__table__
        stale = ids.utcnow() - timedelta(seconds=state.settings.stuck_after + 1)
        state.db.session.execute(table.update().where(table.c.id == delivery_id).values(claimed_at=stale))
        state.db.session.commit()
        claimed_b = claim.claim(state, [delivery_id])
        assert claimed_b == {delivery_id: 2}
        [result_a] = record.record(state, [outcome_a])  # A records late
        [work_b] = claim.load(state, claimed_b)
        [result_b] = record.record(state, [attempt.perform(state, work_b)])
    assert (result_a.status, result_b.status) == ("failed", "failed")
    assert _hook(app, hook)["failures"] == 1
    with app.app_context():
        A = get_state(app).models.Attempt
        numbers = app.db.session.execute(sa.select(A.number).where(A.delivery_id == delivery_id)).scalars().all()
    assert sorted(numbers) == [1, 2]
