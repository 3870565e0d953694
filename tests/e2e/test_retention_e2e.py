"""End to end: real workers deliver, rows of every status are aged, and a worker prunes them on
schedule (one worker of two); a prune of many rows while events are emitted and delivered."""

from __future__ import annotations

import ast
import datetime as dt
import re
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from e2e.conftest import wait_until
from e2e.helpers import deliveries, emit, make_webhook, row_counts, update_delivery
from e2e.receiver import Receiver, Reply
from flask_trakkr_webhooks import get_state, ids, retention
from flask_trakkr_webhooks.testing import seed_history

pytestmark = pytest.mark.e2e

AGED = ids.utcnow() - dt.timedelta(days=40)
PRUNED_LINE = re.compile(r"trakkr_webhooks pruned (\{[^}]*\})")


def age(app: Any, delivery_id: str, **values: Any) -> None:
    """Move a delivery, its attempts and its event 40 days back (and set ``values``)."""
    with app.app_context():
        state = get_state(app)
        m = state.models
        D, A, E = m.Delivery.__table__, m.Attempt.__table__, m.Event.__table__
        with state.db.engine.begin() as connection:
            event_id = connection.scalar(sa.select(D.c.event_id).where(D.c.id == delivery_id))
            connection.execute(E.update().where(E.c.id == event_id).values(created_at=AGED))
            connection.execute(A.update().where(A.c.delivery_id == delivery_id).values(started_at=AGED))
    update_delivery(app, delivery_id, created_at=AGED, updated_at=AGED, **values)


def prunes(*workers: Any) -> list[dict[str, int]]:
    """The counts of every prune the workers logged."""
    return [ast.literal_eval(m) for w in workers for m in PRUNED_LINE.findall(w.output())]


def test_retention_worker_prunes_every_status_exactly_one_worker_of_two(e2e_app, receiver, start_worker):
    app = e2e_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[], TRAKKR_WEBHOOKS_PRUNE_INTERVAL=60)
    state = get_state(app)
    with Receiver() as refusing:
        refusing.default = Reply(400, body=b"no")
        make_webhook(app, receiver.url + "/ok")
        make_webhook(app, refusing.url + "/no")
        first = start_worker(app)
        events = [emit(app) for _ in range(5)]
        done = {
            e: wait_until(
                lambda e=e: (lambda ds: ds if len(ds) == 2 and all(d["completed_at"] for d in ds) else None)(
                    deliveries(app, e)
                ),
                20,
                f"both deliveries of {e} to finish",
            )
            for e in events
        }
    by_event = {e: {d["status"]: d["id"] for d in ds} for e, ds in done.items()}
    assert all(set(v) == {"succeeded", "failed"} for v in by_event.values()), by_event
    first.stop()
    wait_until(lambda: prunes(first), 5, "the first worker's start-up prune")
    assert prunes(first) == [dict(deliveries=0, attempts=0, events=0, bodies=0)]  # nothing was old then

    s, f = ({e: by_event[e][k] for e in events} for k in ("succeeded", "failed"))
    e1, e2, e3, e4, e5 = events
    age(app, s[e1], completed_at=AGED)  # succeeded, old: goes
    age(app, f[e1], completed_at=AGED)  # failed, old: goes (and event 1 with them)
    age(app, s[e2], status="cancelled", completed_at=AGED)  # cancelled, old: goes (event 2 too)
    age(app, f[e2], completed_at=AGED)
    age(app, s[e3], completed_at=AGED)  # goes, but event 3 stays for ...
    age(app, f[e3], status="pending", completed_at=None)  # ... its open delivery
    age(app, s[e4], status="retrying", completed_at=None, next_attempt_at=ids.utcnow() + dt.timedelta(days=1))
    age(app, f[e4], status="sending", completed_at=None, claimed_at=ids.utcnow())
    age(app, f[e5], status="queued", completed_at=None)
    # s[e5] stays as it is: succeeded a moment ago, its body kept.
    before = row_counts(app)
    assert before == {"events": 5, "deliveries": 10, "attempts": 10, "bodies": 10}

    state.redis().delete(retention.prune_lock_key(state))  # an interval has passed
    workers = [start_worker(app), start_worker(app)]
    expected = dict(deliveries=5, attempts=5, events=2, bodies=4)
    wait_until(lambda: prunes(*workers), 20, "a scheduled prune")
    after = row_counts(app)
    assert after == {"events": 3, "deliveries": 5, "attempts": 5, "bodies": 1}
    gone = {s[e1], f[e1], s[e2], f[e2], s[e3]}
    left = {d["id"]: d for d in deliveries(app)}
    assert set(left) == {f[e3], s[e4], f[e4], f[e5], s[e5]} and not gone & set(left)
    assert left[s[e5]]["attempts"][0]["response_body"] == "ok"
    assert all(left[i]["attempts"][0]["response_body"] is None for i in (f[e3], s[e4], f[e4], f[e5]))
    assert all(left[i]["attempts"][0]["status_code"] in (200, 400) for i in left)  # status and timing stay
    # One worker of the two pruned; the other found the lock taken (and still does).
    time.sleep(2)
    assert prunes(*workers) == [expected]


def test_retention_prune_while_emitting_and_delivering(e2e_app, receiver, start_worker, record_property):
    app = e2e_app(TRAKKR_WEBHOOKS_PRUNE_INTERVAL=0)
    state = get_state(app)
    hook = make_webhook(app, receiver.url + "/ok")
    old = 20_000
    with app.app_context():
        seed_history(state, hook, old, AGED, attempts=2)
        kept_open = seed_history(state, hook, 50, AGED, status="sending", attempts=1)
    D = state.models.Delivery.__table__
    with app.app_context(), state.db.engine.connect() as connection:
        open_ids = set(connection.scalars(sa.select(D.c.id).where(D.c.event_id.in_(kept_open))))
    start_worker(app)
    emitted: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def emitter() -> None:
        try:
            while not stop.is_set():
                emitted.append(emit(app))
                stop.wait(0.02)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=emitter)
    thread.start()
    try:
        with app.app_context():
            # The pause of PostgreSQL's default on both databases: SQLite's (30) would make this
            # run minutes; the default pacing is measured by bench.prune, not here.
            counts = retention.prune(state, retention.Cutoffs.of(state), batch_size=500, pause=2)
    finally:
        stop.set()
        thread.join(30)
    assert errors == []
    assert counts.deliveries == old and counts.attempts == 2 * old and counts.events == old
    # The open ones stayed (the sweep may have finished them meanwhile: as new, not pruned).
    with app.app_context(), state.db.engine.connect() as connection:
        assert set(connection.scalars(sa.select(D.c.id).where(D.c.id.in_(open_ids)))) == open_ids
    record_property("emitted_during_prune", len(emitted))
    assert len(emitted) > 10
    wait_until(
        lambda: all(d["status"] == "succeeded" for e in emitted for d in deliveries(app, e)),
        30,
        "every event emitted during the prune to be delivered",
    )
    got = {r.json["event"]["id"] for r in receiver.received if r.path == "/ok"}
    assert set(emitted) <= got
