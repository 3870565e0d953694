"""Capacity figures of issue 16: rows and bytes per delivery, measured on real deliveries.

One ``flask webhooks worker`` delivers ``--events`` events to ``--webhooks`` webhooks (signed,
to a local receiver answering ``200 ok``); then the tables' sizes are read from the database
(PostgreSQL: ``pg_total_relation_size``, with indexes and TOAST; SQLite: pages in use after
``VACUUM``) and divided by the deliveries.

    python -m bench.capacity [--database sqlite|postgresql] [--events N] [--webhooks N]

Prints a Markdown table per table, and the growth per day at 100 deliveries/s for 30 days.
"""

from __future__ import annotations

import argparse
from typing import Any

import sqlalchemy as sa

from bench.common import BenchApp, ReceiverProcess, WorkerProcess, bench_config, database, redis_server, wait_until

TABLES = ("trakkr_webhooks", "trakkr_webhook_events", "trakkr_webhook_deliveries", "trakkr_webhook_attempts")


def sizes(bench: BenchApp, kind: str) -> dict[str, Any]:
    """Rows and bytes per table after compacting (bytes: per table on PostgreSQL, the file on SQLite)."""
    out: dict[str, Any] = {}
    with bench.app.app_context():
        engine = bench.app.db.engine
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in TABLES:
                rows = connection.scalar(sa.text(f"SELECT count(*) FROM {table}"))
                size = None
                if kind == "postgresql":  # compacted: what the rows take without dead versions
                    connection.exec_driver_sql(f"VACUUM FULL ANALYZE {table}")
                    size = connection.scalar(sa.text(f"SELECT pg_total_relation_size('{table}')"))
                out[table] = (rows, size)
            if kind == "sqlite":
                connection.exec_driver_sql("VACUUM")
                pages = connection.exec_driver_sql("PRAGMA page_count").scalar() or 0
                page = connection.exec_driver_sql("PRAGMA page_size").scalar() or 0
                out["file"] = pages * page
    return out


def run(kind: str, events: int, webhooks: int) -> dict[str, Any]:
    """Deliver, then measure."""
    with redis_server() as (redis_url, _label), database(kind) as url, ReceiverProcess() as receiver:
        bench = BenchApp(url, bench_config(redis_url))
        try:
            bench.add_webhooks([f"{receiver.url()}/h/{i}" for i in range(webhooks)])
            with WorkerProcess(bench) as worker:
                worker.wait_ready()
                for start in range(0, events, 100):
                    bench.emit(min(100, events - start))
                total = events * webhooks
                wait_until(lambda: bench.count_done()[0] >= total, 600, "every delivery to finish")
            return sizes(bench, kind)
        finally:
            bench.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Run and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--webhooks", type=int, default=10)
    args = parser.parse_args(argv)
    measured = run(args.database, args.events, args.webhooks)
    deliveries = measured["trakkr_webhook_deliveries"][0]
    print(f"database: {args.database}; {args.events:,} events x {args.webhooks} webhooks = {deliveries:,} deliveries")
    print()
    print("| table | rows | rows per delivery | bytes (with indexes) | bytes per delivery |")
    print("|---|---|---|---|---|")
    total = 0
    for table in TABLES:
        rows, size = measured[table]
        per = f"{size / deliveries:,.0f}" if size is not None else "–"
        shown = f"{size:,}" if size is not None else "–"
        print(f"| `{table}` | {rows:,} | {rows / deliveries:.2f} | {shown} | {per} |")
        total += size or 0
    total = measured.get("file", total)
    print(f"| all | | | {total:,} | **{total / deliveries:,.0f}** |")
    per_day = 100 * 86400
    print()
    print(
        f"At 100 deliveries/s: {per_day:,} deliveries/day, {per_day * total / deliveries / 1e9:,.1f} GB/day; "
        f"30 days of retention holds {30 * per_day * total / deliveries / 1e9:,.0f} GB."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
