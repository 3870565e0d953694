"""Benchmark 3: ``emit`` + commit fanning one event out to 1 … 10,000 webhooks.

Timed from before ``webhooks.emit(...)`` to after ``db.session.commit()`` returns, which
includes the after-commit work: the pipelined enqueue to Redis and the UPDATE marking
the deliveries ``queued``. Counted on the same call: SQL statements sent through the
DBAPI cursor (an ``executemany`` counts once) and Redis round trips (one per command
or pipeline sent). The jobs each repeat enqueued are removed before the next one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from bench.common import DATA, EVENT_TYPE, BenchApp, bench_config, stats

FANOUTS = (1, 10, 100, 1000, 10000)


@contextmanager
def counting(engine: sa.engine.Engine) -> Iterator[dict[str, int]]:
    """Count SQL statements on ``engine`` and Redis round trips in this process while inside."""
    from redis.connection import AbstractConnection

    counts = {"sql": 0, "redis": 0}

    def on_execute(*args: Any) -> None:
        counts["sql"] += 1

    original = AbstractConnection.send_packed_command

    def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        counts["redis"] += 1
        return original(self, command, check_health)

    sa.event.listen(engine, "before_cursor_execute", on_execute)
    AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
        sa.event.remove(engine, "before_cursor_execute", on_execute)


def _clear_queue(bench: BenchApp) -> None:
    from rq import Queue

    state = bench.state
    queue = Queue(state.settings.queue, connection=state.redis())
    queue.empty()
    queue.connection.delete(state.jobs_key)


def emit_fanout(
    database_url: str, redis_url: str, *, repeats: int, fanouts: tuple[int, ...] = FANOUTS
) -> dict[int, dict[str, Any]]:
    """``{fan-out: {"ms": Stats, "sql": n, "redis": n, "us_per_webhook": float}}``."""
    out: dict[int, dict[str, Any]] = {}
    bench = BenchApp(database_url, bench_config(redis_url))
    try:
        app = bench.app
        for fanout in fanouts:
            brand = {"id": f"00000000-0000-4000-8000-{fanout:012d}", "name": "Fan-out", "website": None}
            bench.brand = brand
            bench.add_webhooks([f"https://hooks.example/{fanout}/{i}" for i in range(fanout)])
            # One untimed emit first: statement caches warm, connections open.
            bench.emit(1)
            _clear_queue(bench)
            times, counts = [], {}
            for _ in range(repeats):
                with app.app_context():
                    with counting(app.db.engine) as counted:
                        start = time.perf_counter()
                        app.webhooks.emit(EVENT_TYPE, brand=brand, data=DATA)
                        app.db.session.commit()
                        times.append((time.perf_counter() - start) * 1000)
                    counts = dict(counted)
                _clear_queue(bench)
            measured = stats(times)
            out[fanout] = {
                "ms": measured,
                "sql": counts["sql"],
                "redis": counts["redis"],
                "us_per_webhook": measured.median * 1000 / fanout,
            }
    finally:
        bench.cleanup()
    return out
