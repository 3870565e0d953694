"""Benchmark of issue 13: the portal's delivery log of a webhook with 100,000 deliveries.

Server time of ``GET /webhooks/portal/<id>`` (render included), measured in-process with
Flask's test client (no network), on SQLite and PostgreSQL: the first page, each filter
(status, event type, time), and a page deep in the log reached by its cursor. The webhook's
deliveries are spread over 30 days, one event each, 5 event types, 5% failed; another webhook
of the same brand has as many again, so the log's index has to pick this webhook's rows.

    python -m bench.portal [--database sqlite|postgresql|both] [--deliveries N] [--repeats N]

Prints a Markdown table: ``median (min–max)`` milliseconds per page. Target: < 200 ms.
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from bench.common import BenchApp, bench_config, database, redis_server, stats
from flask_trakkr_webhooks import ids

EVENT_TYPES = ("visibility_changed", "report_completed", "competitor_added", "citation_gained", "citation_lost")
TARGET_MS = 200.0
BATCH = 10_000


def fill(bench: BenchApp, webhook_id: str, count: int) -> list[str]:
    """``count`` events and deliveries of ``webhook_id`` over the last 30 days, oldest first; their ids."""
    state = bench.state
    events, deliveries = state.models.Event.__table__, state.models.Delivery.__table__
    now = ids.utcnow()
    step = timedelta(days=30) / count
    delivery_ids: list[str] = []
    with bench.app.app_context():
        session = bench.app.db.session
        for start in range(0, count, BATCH):
            event_rows, delivery_rows = [], []
            for n in range(start, min(start + BATCH, count)):
                at = now - timedelta(days=30) + step * n
                event_id, delivery_id = ids.new_id(ids.EVENT), ids.new_id(ids.DELIVERY)
                kind = EVENT_TYPES[n % len(EVENT_TYPES)]
                event_rows.append(
                    dict(id=event_id, type=kind, brand_id=bench.brand["id"], payload={"n": n}, created_at=at)
                )
                failed = n % 20 == 0
                delivery_rows.append(
                    dict(
                        id=delivery_id,
                        event_id=event_id,
                        webhook_id=webhook_id,
                        status="failed" if failed else "succeeded",
                        is_test=False,
                        attempt_count=4 if failed else 1,
                        deferrals=0,
                        deferred_seconds=0.0,
                        last_status_code=503 if failed else 200,
                        last_error="HTTP 503; gave up after 4 attempts" if failed else None,
                        created_at=at,
                        updated_at=at,
                        completed_at=at,
                    )
                )
                delivery_ids.append(delivery_id)
            session.execute(sa.insert(events), event_rows)
            session.execute(sa.insert(deliveries), delivery_rows)
            session.commit()
    return delivery_ids


def measure(client: Any, path: str, repeats: int) -> list[float]:
    """Milliseconds of ``repeats`` GETs of ``path`` (after one warm-up); each must answer 200."""
    times = []
    for n in range(repeats + 1):
        started = time.perf_counter()
        response = client.get(path)
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True)[:500])
        if n:
            times.append(elapsed)
    return times


def run(kind: str, count: int, repeats: int) -> list[tuple[str, Any, Any]]:
    """The rows of one database: ``(page, stats, deliveries shown)``."""
    with redis_server() as (redis_url, _), database(kind) as database_url:
        bench = BenchApp(database_url, bench_config(redis_url, TRAKKR_WEBHOOKS_PORTAL=True, SECRET_KEY="bench"))
        target, other = bench.add_webhooks(["http://127.0.0.1:9/log", "http://127.0.0.1:9/other"])
        started = time.perf_counter()
        delivery_ids = fill(bench, target, count)
        fill(bench, other, count)
        print(f"{kind}: {2 * count:,} deliveries written in {time.perf_counter() - started:.0f} s", flush=True)
        with bench.app.app_context():
            if kind == "postgresql":
                bench.app.db.session.execute(sa.text("ANALYZE"))
                bench.app.db.session.commit()
        client = bench.app.test_client()
        base = f"/webhooks/portal/{target}"
        since = (ids.utcnow() - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
        pages = [
            ("first page", base),
            ("status=failed", f"{base}?status=failed"),
            ("event_type=report_completed", f"{base}?event_type=report_completed"),
            ("since 3 days ago", f"{base}?since={since}"),
            ("page at the 50,000th delivery (cursor)", f"{base}?starting_after={delivery_ids[count // 2]}"),
            ("failed, from the 50,000th (cursor)", f"{base}?status=failed&starting_after={delivery_ids[count // 2]}"),
            ("webhooks list (success rates over 7 days)", f"/webhooks/portal?brand_id={bench.brand['id']}"),
            ("health (7 days of deliveries, hourly)", f"{base}/health"),
        ]
        rows = []
        for label, path in pages:
            shown = client.get(path).get_data(as_text=True).count("<code>dlv_") or "–"
            rows.append((label, stats(measure(client, path, repeats)), shown))
        with bench.app.app_context():
            bench.app.db.session.remove()
            bench.app.db.engine.dispose()
        return rows


def main(argv: list[str] | None = None) -> int:
    """Run and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    kinds = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    header = f"| database | page ({args.deliveries:,} deliveries) | rows | ms: median (min–max) | < {TARGET_MS:.0f} |"
    print("\n" + header)
    print("|---|---|---|---|---|")
    lines = []
    for kind in kinds:
        for label, measured, shown in run(kind, args.deliveries, args.repeats):
            met = "**met**" if measured.median < TARGET_MS else "**not met**"
            lines.append(f"| {kind} | {label} | {shown} | {measured.show(1)} | {met} |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
