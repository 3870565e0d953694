"""Retention: what a prune deletes and keeps (exact counts), in batches; ``flask webhooks prune``; the lock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from e2e.helpers import row_counts
from flask_trakkr_webhooks import get_state, ids, retention
from flask_trakkr_webhooks.models import DELIVERY_STATUSES, FINISHED
from flask_trakkr_webhooks.testing import seed_history

NOW = ids.utcnow()
OLD = NOW - dt.timedelta(days=40)  # past RETENTION (30d)
MID = NOW - dt.timedelta(days=10)  # past BODY_RETENTION (7d) only
NEW = NOW - dt.timedelta(days=1)


def make_hook(app: Flask) -> str:
    """A webhook row to hang deliveries on."""
    with app.app_context():
        state = get_state(app)
        hook = state.models.Webhook(brand_id="seed", url="https://a.example/h", events=["visibility_changed"])
        state.db.session.add(hook)
        state.db.session.commit()
        return str(hook.id)


def counts(app: Flask) -> dict[str, Any]:
    """Rows per table and attempts holding a body (``row_counts``), and deliveries per status."""
    with app.app_context():
        D = get_state(app).models.Delivery.__table__
        with get_state(app).db.engine.connect() as connection:
            by_status = dict(connection.execute(sa.select(D.c.status, sa.func.count()).group_by(D.c.status)).all())
    return {**row_counts(app), "by_status": by_status}


@pytest.fixture
def history(app: Flask) -> dict[str, Any]:
    """Every status, old and new; bodies of middle age; old events without deliveries; an old event
    with one finished and one open delivery."""
    state = get_state(app)
    hook = make_hook(app)
    with app.app_context():
        for status in DELIVERY_STATUSES:
            seed_history(state, hook, 3, OLD, status=status, attempts=2)
            seed_history(state, hook, 2, NEW, status=status, attempts=1)
        seed_history(state, hook, 2, MID, status="succeeded", attempts=2)
        seed_history(state, hook, 1, MID, status="retrying", attempts=2)
        lonely = seed_history(state, hook, 2, OLD, attempts=0)
        [shared] = seed_history(state, hook, 1, OLD, status="succeeded", attempts=2)
        D = state.models.Delivery.__table__
        with state.db.engine.begin() as connection:
            connection.execute(sa.delete(D).where(D.c.event_id.in_(lonely)))
            connection.execute(
                D.insert().values(
                    id=ids.new_id(ids.DELIVERY), event_id=shared, webhook_id=hook, status="pending", is_test=False,
                    attempt_count=0, created_at=OLD, updated_at=OLD,
                )
            )  # fmt: skip
    return {"hook": hook, "shared_event": shared}


#: What the default settings prune in ``history``: 3 old of each final status + the shared event's
#: finished one; their attempts; their events, the 2 without deliveries, not the shared one;
#: bodies of every kept attempt older than 7 days (open old ones: 4 x 3 x 2; middle: 2 x 2 + 2).
EXPECTED = {"deliveries": 10, "attempts": 20, "events": 11, "bodies": 30}


def test_retention_prunes_exactly_the_expired_and_keeps_everything_open(app: Flask, history: dict[str, Any]) -> None:
    before = counts(app)
    state = get_state(app)
    cutoffs = retention.Cutoffs.of(state, now=NOW)
    with app.app_context():
        assert retention.plan(state, cutoffs).as_dict() == EXPECTED
        seen: list[tuple[str, int]] = []
        done = retention.prune(state, cutoffs, batch_size=4, progress=lambda step, n: seen.append((step, n)))
    assert done.as_dict() == EXPECTED
    assert max(n for _, n in seen) <= 4 * 2  # a batch of 4 deliveries: at most 8 attempts
    after = counts(app)
    assert after["deliveries"] == before["deliveries"] - 10
    assert after["attempts"] == before["attempts"] - 20
    assert after["events"] == before["events"] - 11
    assert after["bodies"] == before["bodies"] - 20 - 30
    # Every open delivery stays, old or not; final ones only when new (or middle-aged).
    for status in DELIVERY_STATUSES:
        expected = before["by_status"][status] - (4 if status == "succeeded" else 3 if status in FINISHED else 0)
        assert after["by_status"][status] == expected, status
    with app.app_context():
        assert state.db.session.get(state.models.Event, history["shared_event"]) is not None
        assert retention.plan(state, cutoffs).as_dict() == dict.fromkeys(EXPECTED, 0)
        assert retention.prune(state, cutoffs).as_dict() == dict.fromkeys(EXPECTED, 0)


class FakeTime:
    """``retention.time`` with a clock that advances 0.1 s per reading, and sleeps recorded, not slept."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        self.now += 0.1
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_retention_pauses_by_database_unless_configured(app: Flask, make_app: Callable[..., Flask]) -> None:
    state = get_state(app)
    with app.app_context():
        dialect = state.db.engine.dialect.name
        # SQLite locks the whole database per write: batches must be rare there.
        assert retention.pause_ratio(state) == {"sqlite": 30.0, "postgresql": 2.0}[dialect]
    configured = make_app(TRAKKR_WEBHOOKS_PRUNE_PAUSE=0.25)
    with configured.app_context():
        assert retention.pause_ratio(get_state(configured)) == 0.25


@pytest.mark.parametrize(
    ("pause", "expected"),
    [(None, None), (3.0, 0.3), (0, retention.MIN_PAUSE), (1000.0, retention.MAX_PAUSE)],
)
def test_retention_pauses_after_each_full_batch(
    app: Flask, history: dict[str, Any], monkeypatch: pytest.MonkeyPatch, pause: float | None, expected: float | None
) -> None:
    clock = FakeTime()
    monkeypatch.setattr(retention, "time", clock)
    state = get_state(app)
    with app.app_context():
        if expected is None:  # the default: the database's ratio times the batch's 0.1 s
            expected = 0.1 * retention.pause_ratio(state)
        done = retention.prune(state, retention.Cutoffs.of(state, now=NOW), batch_size=4, pause=pause)
    assert done.as_dict() == EXPECTED
    # Full batches are followed by a pause (deliveries 4+4 of 10; events: the walk reads all 24 old
    # ones, 6 x 4, the 13 still referenced included; bodies 7 x 4 of 30); the last, short batch of
    # each step is not.
    assert clock.slept == pytest.approx([expected] * (2 + 6 + 7))


def test_retention_events_walk_past_batches_that_are_all_still_referenced(app: Flask) -> None:
    # The oldest events are kept by open deliveries, whole batches of them; the walk must go on
    # past those to the unreferenced ones after them.
    state = get_state(app)
    hook = make_hook(app)
    with app.app_context():
        kept = seed_history(state, hook, 5, OLD, status="retrying", attempts=1, spread=60)
        gone = seed_history(state, hook, 3, OLD + dt.timedelta(hours=1), attempts=0, spread=60)
        D = state.models.Delivery.__table__
        with state.db.engine.begin() as connection:
            connection.execute(sa.delete(D).where(D.c.event_id.in_(gone)))
        done = retention.prune(state, retention.Cutoffs.of(state, now=NOW), batch_size=2)
        assert (done.deliveries, done.events) == (0, 3)
        E = state.models.Event.__table__
        with state.db.engine.connect() as connection:
            assert set(connection.scalars(sa.select(E.c.id))) == set(kept)


def test_retention_json_null_headers_are_dropped_once(app: Flask) -> None:
    state = get_state(app)
    hook = make_hook(app)
    with app.app_context():
        seed_history(state, hook, 1, OLD, status="retrying", attempts=1, body=None)
        A = state.models.Attempt.__table__
        with state.db.engine.begin() as connection:  # None through the JSON type: the text 'null'
            connection.execute(A.update().values(response_headers=None))
        cutoffs = retention.Cutoffs.of(state, now=NOW)
        assert retention.prune(state, cutoffs).bodies == 1
        assert retention.plan(state, cutoffs).bodies == 0


def prune_cli(app: Flask, *args: str) -> tuple[int, str]:
    """``flask webhooks prune ARGS``: ``(exit code, output)``."""
    result = app.test_cli_runner().invoke(args=["webhooks", "prune", *args])
    return result.exit_code, result.stdout


def test_retention_cli_dry_run_then_prune(app: Flask, history: dict[str, Any]) -> None:
    before = counts(app)
    code, output = prune_cli(app, "--dry-run")
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0].startswith("rows finished before ") and lines[1].startswith("response bodies before ")
    assert lines[2:] == ["would delete 10 deliveries, 20 attempts, 11 events; would drop 30 response bodies"]
    assert counts(app) == before
    code, output = prune_cli(app, "--batch-size", "3", "--pause", "0")
    assert code == 0, output
    assert output.splitlines()[-1] == "deleted 10 deliveries, 20 attempts, 11 events; dropped 30 response bodies"


def test_retention_cli_older_than_overrides_the_settings(app: Flask, history: dict[str, Any]) -> None:
    code, output = prune_cli(app, "--older-than", "5d")
    assert code == 0, output
    # The middle-aged finished ones go too (2 deliveries, 4 attempts, 2 events); bodies: the old open
    # ones and the middle-aged retrying one.
    assert output.splitlines()[-1] == "deleted 12 deliveries, 24 attempts, 13 events; dropped 26 response bodies"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "abc"], "Invalid value for '--older-than': not a duration: 'abc'"),
        (["--older-than", "-3d"], "Invalid value for '--older-than': not a duration: '-3d'"),
        (["--batch-size", "0"], "Invalid value for '--batch-size': 0 is not in the range x>=1."),
        (["--pause", "-1"], "Invalid value for '--pause': -1.0 is not in the range x>=0."),
        (["--pause", "long"], "Invalid value for '--pause': 'long' is not a valid float range."),
    ],
)
def test_retention_cli_bad_input_exits_2_naming_the_option(app: Flask, args: list[str], message: str) -> None:
    result = app.test_cli_runner().invoke(args=["webhooks", "prune", *args])
    assert result.exit_code == 2
    assert message in result.stderr


def test_retention_cli_with_retention_off_prunes_nothing(make_app: Callable[..., Flask]) -> None:
    app = make_app(TRAKKR_WEBHOOKS_RETENTION=None, TRAKKR_WEBHOOKS_BODY_RETENTION=None)
    assert prune_cli(app) == (
        0,
        "nothing to prune: TRAKKR_WEBHOOKS_RETENTION and BODY_RETENTION are None (kept for ever)\n",
    )


def test_retention_lock_one_holder_at_a_time(app: Flask) -> None:
    state = get_state(app)
    state.redis().delete(retention.prune_lock_key(state))
    try:
        token = retention.prune_lock(state, 5)
        assert token is not None
        assert retention.prune_lock(state, 5) is None
        assert retention.hold_prune_lock(state, "someone-else", 5) is False
        assert retention.hold_prune_lock(state, token, 5) is True
    finally:
        state.redis().delete(retention.prune_lock_key(state))
