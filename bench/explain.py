"""Issue 16: the plans of the hot queries at 10 million deliveries (PostgreSQL).

Fills a private PostgreSQL database with generated history: 100 brands of 10 webhooks each,
``--deliveries`` deliveries (one event to the 10 webhooks of its brand, one attempt each)
spread over 35 days, the newest ``--open`` deliveries still open (queued or retrying), bodies
kept for the last 7 days as retention would leave them. Rows are written by
``INSERT ... SELECT generate_series`` with the secondary indexes dropped, then the indexes are
built again and the tables analysed, as a long-lived database would be.

Then the extension's own code runs its hot paths on that database (emit to a brand, claim a
batch, the sweep, the API's delivery log and one delivery, the retention plan and one prune
batch); every SQL statement they send is captured and run again under
``EXPLAIN (ANALYZE, BUFFERS)`` in a transaction that is rolled back.

    python -m bench.explain [--deliveries N] [--open N]

Prints, per hot path, each statement's plan (Markdown), the time it took, and the indexes used.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from bench.common import BenchApp, bench_config, database, redis_server

BRANDS = 100
NO_INDEX = "none (sequential scan or no table read)"
PER_BRAND = 10
DAYS = 35


def _generate(bench: BenchApp, deliveries: int, open_: int) -> dict[str, float]:
    """Write the history; returns the seconds each step took."""
    brands = [{"id": f"00000000-0000-4000-8000-{b:012x}", "name": f"brand {b}"} for b in range(BRANDS)]
    for brand in brands:  # through the bench's own helper: the signing secrets are encrypted as usual
        bench.add_webhooks([f"http://127.0.0.1:9/hook/{k}" for k in range(PER_BRAND)], brand=brand)
    events = deliveries // PER_BRAND
    took: dict[str, float] = {}
    m = bench.state.models
    tables = [m.Event.__table__, m.Delivery.__table__, m.Attempt.__table__]
    with bench.app.app_context(), bench.app.db.engine.begin() as connection:
        indexes = [index for table in tables for index in table.indexes]
        for index in indexes:
            index.drop(connection)
        connection.exec_driver_sql(
            "CREATE TEMP TABLE hooks AS SELECT brand_id,"
            " row_number() OVER (PARTITION BY brand_id ORDER BY id) - 1 AS k, id FROM trakkr_webhooks"
        )
        started = time.monotonic()
        # Event g happens at now - 35 days + g/events of 35 days, for brand g % 100.
        connection.exec_driver_sql(
            f"""
            INSERT INTO trakkr_webhook_events (id, type, brand_id, payload, created_at)
            SELECT 'evt_' || lpad(to_hex(g), 24, '0'), 'visibility_changed',
                   '00000000-0000-4000-8000-' || lpad(to_hex(mod(g, {BRANDS})), 12, '0'),
                   '{{"brand": {{"name": "Acme"}}, "current_score": 57.5}}'::json,
                   now() at time zone 'utc' - interval '{DAYS} days' + (g::float / {events}) * interval '{DAYS} days'
            FROM generate_series(1, {events}) AS g
            """
        )
        took["events"] = time.monotonic() - started
        started = time.monotonic()
        first_open = deliveries - open_
        connection.exec_driver_sql(
            f"""
            INSERT INTO trakkr_webhook_deliveries (id, event_id, webhook_id, status, is_test, attempt_count,
                deferrals, deferred_seconds, next_attempt_at, enqueued_at, last_status_code, created_at,
                updated_at, completed_at)
            SELECT 'dlv_' || lpad(to_hex(n), 24, '0'), e.id, h.id,
                   CASE WHEN n < {first_open} THEN 'succeeded' WHEN mod(n, 2) = 0 THEN 'queued' ELSE 'retrying' END,
                   false, CASE WHEN n < {first_open} THEN 1 ELSE mod(n, 2) END, 0, 0,
                   CASE WHEN n >= {first_open} AND mod(n, 2) = 1 THEN e.created_at + interval '1 hour' END,
                   e.created_at, CASE WHEN n < {first_open} THEN 200 END,
                   e.created_at, e.created_at + interval '1 second',
                   CASE WHEN n < {first_open} THEN e.created_at + interval '1 second' END
            FROM (SELECT g, (g - 1) * {PER_BRAND} + k AS n, k FROM generate_series(1, {events}) AS g,
                  generate_series(0, {PER_BRAND - 1}) AS k) AS s
            JOIN trakkr_webhook_events AS e ON e.id = 'evt_' || lpad(to_hex(s.g), 24, '0')
            JOIN hooks AS h ON h.brand_id = e.brand_id AND h.k = s.k
            """
        )
        took["deliveries"] = time.monotonic() - started
        started = time.monotonic()
        connection.exec_driver_sql(
            """
            INSERT INTO trakkr_webhook_attempts (id, delivery_id, number, started_at, duration_ms, status_code,
                outcome, response_headers, response_body)
            SELECT 'att_' || substr(d.id, 5), d.id, 1, d.created_at, 12.5,
                   CASE WHEN d.status = 'succeeded' THEN 200 ELSE 503 END,
                   CASE WHEN d.status = 'succeeded' THEN 'succeeded' ELSE 'retry' END,
                   CASE WHEN d.created_at > now() at time zone 'utc' - interval '7 days'
                        THEN '{"Content-Type": "text/plain"}'::json END,
                   CASE WHEN d.created_at > now() at time zone 'utc' - interval '7 days' THEN 'ok' END
            FROM trakkr_webhook_deliveries AS d WHERE d.attempt_count > 0
            """
        )
        took["attempts"] = time.monotonic() - started
        started = time.monotonic()
        for index in indexes:
            index.create(connection)
        took["indexes"] = time.monotonic() - started
    started = time.monotonic()
    with (
        bench.app.app_context(),
        bench.app.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection,
    ):
        for table in (
            "trakkr_webhooks",
            "trakkr_webhook_events",
            "trakkr_webhook_deliveries",
            "trakkr_webhook_attempts",
        ):
            connection.exec_driver_sql(f"VACUUM ANALYZE {table}")
    took["analyze"] = time.monotonic() - started
    return took


@contextmanager
def captured(bench: BenchApp) -> Iterator[list[tuple[str, Any]]]:
    """Every statement (and its first parameter set) the app's engine sends inside the block."""
    out: list[tuple[str, Any]] = []

    def listen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if executemany and parameters:
            parameters = parameters[0]
        out.append((statement, parameters))

    with bench.app.app_context():
        engine = bench.app.db.engine
    sa.event.listen(engine, "before_cursor_execute", listen)
    try:
        yield out
    finally:
        sa.event.remove(engine, "before_cursor_execute", listen)


def explain(bench: BenchApp, statement: str, parameters: Any) -> tuple[str, float, list[str]]:
    """The plan of one statement as run (ANALYZE, BUFFERS; rolled back): (text, ms, indexes used)."""
    with bench.app.app_context(), bench.app.db.engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        with raw.cursor() as cursor:
            # An INSERT already ran (its keys are taken) and has no plan to speak of: not run again.
            options = "" if statement.lstrip().upper().startswith("INSERT") else "(ANALYZE, BUFFERS, FORMAT TEXT) "
            cursor.execute("EXPLAIN " + options + statement, parameters)
            lines = [row[0] for row in cursor.fetchall()]
        raw.rollback()
    total = next((float(m.group(1)) for line in lines if (m := re.search(r"Execution Time: ([\d.]+) ms", line))), 0.0)
    used = sorted(
        {
            m.group(1)
            for line in lines
            for m in [
                re.search(
                    r"(?:Index Scan (?:Backward )?using|Index Only Scan (?:Backward )?using"
                    r"|Bitmap Index Scan on) (\S+)",
                    line,
                )
            ]
            if m
        }
    )
    return "\n".join(lines), total, used


def hot_paths(bench: BenchApp) -> dict[str, list[tuple[str, Any]]]:
    """Run each hot path once through the extension's own code; the statements each sent."""
    from flask_trakkr_webhooks import claim, dispatch, retention

    out: dict[str, list[tuple[str, Any]]] = {}
    brand = {"id": "00000000-0000-4000-8000-000000000007", "name": "brand 7"}
    with captured(bench) as sent:
        [event_id] = bench.emit(1, brand=brand)
    out["emit one event to a brand's 10 webhooks, and commit"] = list(sent)
    with bench.app.app_context():
        D = bench.state.models.Delivery
        new_ids = [r for (r,) in bench.app.db.session.execute(sa.select(D.id).where(D.event_id == event_id)).all()]
        webhook_id = bench.app.db.session.execute(sa.select(D.webhook_id).where(D.id == new_ids[0])).scalar_one()
        bench.app.db.session.remove()
    with captured(bench) as sent, bench.app.app_context():
        claim.prepare(bench.state, new_ids)
        bench.app.db.session.remove()
    out["claim and load a batch of 10"] = list(sent)
    with captured(bench) as sent, bench.app.app_context():
        dispatch.sweep(bench.state)
        bench.app.db.session.remove()
    out["the sweep (open deliveries whose time has come)"] = list(sent)
    client = bench.app.test_client()
    with captured(bench) as sent:
        page = client.get(f"/webhooks/{webhook_id}/deliveries?limit=20")
        assert page.status_code == 200, page.get_data(as_text=True)
    out["API: a webhook's delivery log, newest 20"] = list(sent)
    with captured(bench) as sent:
        one = client.get(f"/webhooks/{webhook_id}/deliveries/{page.get_json()['data'][-1]['id']}")
        assert one.status_code == 200, one.get_data(as_text=True)
    out["API: one delivery with its attempts"] = list(sent)
    with captured(bench) as sent, bench.app.app_context():
        retention.plan(bench.state, retention.Cutoffs.of(bench.state))
    out["retention: what a prune would remove (--dry-run)"] = list(sent)
    with bench.app.app_context():
        # One batch: a cutoff that leaves about 1,000 deliveries to remove.
        oldest = bench.app.db.session.execute(sa.select(sa.func.min(D.completed_at))).scalar_one()
        bench.app.db.session.remove()
    span = dt.timedelta(days=DAYS) * 1000 / max(1, bench.deliveries)
    with captured(bench) as sent, bench.app.app_context():
        retention.prune(bench.state, retention.Cutoffs(rows=oldest + span, bodies=oldest + span), batch_size=1000)
    out["retention: one prune batch of 1,000 deliveries"] = list(sent)
    return out


_QUIET = re.compile(
    r"^\s*(SAVEPOINT|RELEASE|ROLLBACK|BEGIN|COMMIT|SELECT pg_|SHOW |select pg_|select current_schema)", re.I
)


def main() -> None:
    """Generate, run the hot paths, print their plans."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=10_000_000)
    parser.add_argument("--open", type=int, default=2_000, dest="open_")
    args = parser.parse_args()
    with redis_server() as (redis_url, _label), database("postgresql") as url:
        bench = BenchApp(url, bench_config(redis_url))
        bench.deliveries = args.deliveries  # type: ignore[attr-defined]
        took = _generate(bench, args.deliveries, args.open_)
        print(f"# Hot query plans at {args.deliveries:,} deliveries (PostgreSQL)\n")
        print("Generated in " + ", ".join(f"{k} {v:.0f} s" for k, v in took.items()) + ".\n")
        with bench.app.app_context(), bench.app.db.engine.connect() as connection:
            for table in ("trakkr_webhook_events", "trakkr_webhook_deliveries", "trakkr_webhook_attempts"):
                size = connection.scalar(sa.text(f"SELECT pg_total_relation_size('{table}')"))
                rows = connection.scalar(sa.text(f"SELECT reltuples::bigint FROM pg_class WHERE relname = '{table}'"))
                print(f"- `{table}`: {rows:,} rows, {size / 2**30:.2f} GiB with indexes")
        print()
        summary: list[tuple[str, str, float, list[str]]] = []
        for path, statements in hot_paths(bench).items():
            print(f"## {path}\n")
            for statement, parameters in statements:
                if _QUIET.match(statement):
                    continue
                plan, ms, used = explain(bench, statement, parameters)
                first = " ".join(statement.split())[:160]
                summary.append((path, first, ms, used))
                print(f"```sql\n{first}\n```\n\n```\n{plan}\n```\n")
        print("## Summary\n\n| hot path | statement | ms | indexes used |\n|---|---|---|---|")
        for path, first, ms, used in summary:
            print(f"| {path} | `{first[:70]}…` | {ms:.2f} | {', '.join(used) or NO_INDEX} |")
        bench.cleanup()


if __name__ == "__main__":
    main()
