"""The shared send budget in Redis: sliding windows across processes, slots in flight, holds,
Redis down."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from typing import Any

import pytest
from flask import Flask

from flask_trakkr_webhooks import pacing, ratelimit
from flask_trakkr_webhooks.state import get_state


def _key() -> str:
    return uuid.uuid4().hex


def _take(state: Any, key: str, limit: pacing.RateLimit) -> float:
    """Ask for a slot and, when granted, give it back at once (a request answered instantly)."""
    token = uuid.uuid4().hex
    wait = ratelimit.acquire(state, key, limit, token, sending_for=30.0)
    if wait == 0.0:
        ratelimit.sent(state, key, limit, token)
    return wait


def test_grants_up_to_the_limit_then_says_how_long(app: Flask) -> None:
    state = get_state(app)
    key, limit = _key(), pacing.parse(["3/1s"])
    assert [_take(state, key, limit) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = _take(state, key, limit)
    assert 1.0 < wait <= 1.1 * (1 + pacing.MARGIN)  # the oldest leaves the 1.1 s window
    again = _take(state, key, limit)
    assert 0 < again <= wait  # asking again takes nothing
    time.sleep(wait + 0.01)
    assert _take(state, key, limit) == 0.0


def test_every_window_holds(app: Flask) -> None:
    state = get_state(app)
    key, limit = _key(), pacing.parse(["5/0.2s", "6/10s"])
    granted = 0
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if _take(state, key, limit) == 0.0:
            granted += 1
        time.sleep(0.01)
    assert granted == 6  # the 10-second window caps it, not the fast one


def test_no_limit_is_never_paced(app: Flask) -> None:
    assert all(_take(get_state(app), _key(), ()) == 0.0 for _ in range(100))


def test_a_hold_stops_every_worker_until_it_ends(app: Flask) -> None:
    state = get_state(app)
    key, limit = _key(), pacing.parse(["100/1s"])
    assert ratelimit.hold(state, key, 0.5) == pytest.approx(0.5, abs=0.05)
    assert ratelimit.hold(state, key, 0.1) == pytest.approx(0.5, abs=0.05)  # the longer hold stays
    assert 0.3 < _take(state, key, limit) <= 0.5
    time.sleep(0.55)
    assert _take(state, key, limit) == 0.0
    assert ratelimit.hold(state, key, 0) == 0.0


def test_redis_down_grants_and_holds_nothing(make_app) -> None:
    app = make_app(TRAKKR_WEBHOOKS_REDIS_URL="redis://127.0.0.1:1/0")
    state = get_state(app)
    limit = pacing.parse(["1/60s"])
    assert [_take(state, "k", limit) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert ratelimit.hold(state, "k", 5) == 5.0
    ratelimit.sent(state, "k", limit, "t")  # nothing to give back to: no error either


def _hammer(redis_url: str, queue: str, key: str, start: Any, out: multiprocessing.Queue) -> None:
    app = Flask("hammer")
    app.config.update(
        TESTING=True,
        SQLALCHEMY_DATABASE_URI="sqlite://",
        TRAKKR_WEBHOOKS_REDIS_URL=redis_url,
        TRAKKR_WEBHOOKS_QUEUE=queue,
    )
    from flask_sqlalchemy import SQLAlchemy

    from flask_trakkr_webhooks import TrakkrWebhooks

    db = SQLAlchemy(app)
    TrakkrWebhooks(app, db)
    state = get_state(app)
    limit = pacing.parse(["5/1s"])
    grants = []
    start.wait(timeout=60)  # both set up (slow on a loaded machine): then 3 s side by side
    until = time.time() + 3.0
    while time.time() < until:
        wait = _take(state, key, limit)
        if wait == 0.0:
            grants.append(time.time())
        else:
            time.sleep(min(wait, 0.05))
    out.put(grants)


def test_two_processes_never_exceed_the_rate_together(app: Flask) -> None:
    state = get_state(app)
    key = _key()
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue = ctx.Queue()
    start = ctx.Barrier(2)
    procs = [
        ctx.Process(target=_hammer, args=(state.settings.redis_url, state.settings.queue, key, start, out))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    grants = sorted(out.get(timeout=60) + out.get(timeout=60))
    for p in procs:
        p.join(timeout=10)
    assert len(grants) >= 10  # both kept sending for 3 s
    # Any 1-second window (sliding, at every grant) holds at most 5 grants.
    worst = max(sum(1 for t in grants if start <= t < start + 1.0) for start in grants)
    assert worst <= 5, worst


def test_a_slot_in_flight_counts_as_arriving_now_until_it_is_answered(app: Flask) -> None:
    # A granted request may wait for a thread, or crawl on a loaded machine: the endpoint
    # counts it whenever it arrives, at the latest when it is answered.
    state = get_state(app)
    key, limit = _key(), pacing.parse(["2/0.5s"])
    period = 0.5 * (1 + pacing.MARGIN)
    assert ratelimit.acquire(state, key, limit, "a", 30.0) == 0.0
    assert ratelimit.acquire(state, key, limit, "b", 30.0) == 0.0
    time.sleep(period + 0.05)  # long past their grants, but both are still on their way
    assert ratelimit.acquire(state, key, limit, "c", 30.0) == pytest.approx(period, abs=0.01)
    ratelimit.sent(state, key, limit, "a")
    # One slot is free again a whole window after a's answer, not after its grant.
    wait = ratelimit.acquire(state, key, limit, "c", 30.0)
    assert period - 0.05 < wait <= period
    time.sleep(wait + 0.01)
    assert ratelimit.acquire(state, key, limit, "c", 30.0) == 0.0
    # b and c are in flight now: nothing more until one of them is answered.
    assert ratelimit.acquire(state, key, limit, "d", 30.0) == pytest.approx(period, abs=0.01)


def test_a_slot_never_given_back_counts_as_answered_at_its_deadline(app: Flask) -> None:
    # Its worker was killed mid-request: the slot frees itself a window after its deadline.
    state = get_state(app)
    key, limit = _key(), pacing.parse(["1/0.2s"])
    period = 0.2 * (1 + pacing.MARGIN)
    assert ratelimit.acquire(state, key, limit, "lost", sending_for=0.3) == 0.0
    assert ratelimit.acquire(state, key, limit, "next", 0.3) == pytest.approx(period, abs=0.01)
    time.sleep(0.3 + 0.02)
    wait = ratelimit.acquire(state, key, limit, "next", 0.3)  # counted at its deadline now
    assert period - 0.05 < wait <= period
    time.sleep(wait + 0.01)
    assert ratelimit.acquire(state, key, limit, "next", 0.3) == 0.0
    ratelimit.sent(state, key, limit, "lost")  # too late to matter: changes nothing
    assert ratelimit.acquire(state, key, limit, "after", 0.3) > 0.0  # "next" is in flight
