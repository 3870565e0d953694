"""Benchmark of issue 16: the prune rate, and ``emit`` latency during a prune vs without one.

The database is filled with ``--rows`` finished deliveries 40 days old (each with its event
and one attempt with a body: 3 rows per delivery), plus ``--recent`` recent ones that stay.
On PostgreSQL the filled tables are vacuumed and analysed first, as a month-old database's
would be. Then, with no worker running (emit only writes and enqueues):

1. **before**: ``emit`` + commit to ``--fanout`` webhooks, one every 20 ms for
   ``--baseline`` seconds, each timed;
2. **during the prune**: ``flask webhooks prune`` runs in its own process (as a worker's
   scheduled prune would), default settings (batches of 1,000; after each a pause of 2 times
   its duration on PostgreSQL, 30 on SQLite), while the same emits go on;
3. **after**: the same emits for ``--baseline`` seconds again.

"Without a prune" pools before and after: one 20-second window's p95 moved by up to 20 % from
run to run on PostgreSQL, and the ratio with it; both halves are printed too.

    python -m bench.prune [--database sqlite|postgresql] [--wal] [--rows N] [--recent N] [--fanout N]
                          [--batch-size N] [--pause RATIO]

Prints a Markdown table: the prune's rows/s, and emit latency (median, p95, max) in both
phases with their ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from bench import hostapp
from bench.common import ROOT, BenchApp, _env, bench_config, database, redis_server
from flask_trakkr_webhooks import retention


def seed(bench: BenchApp, rows: int, recent: int) -> float:
    """Old and recent deliveries; returns the seconds it took."""
    from flask_trakkr_webhooks import ids
    from flask_trakkr_webhooks.testing import seed_history

    [hook] = bench.add_webhooks(["http://127.0.0.1:9/seed"], brand={"id": "seed"})
    started = time.monotonic()
    now = ids.utcnow()
    with bench.app.app_context():
        step = 100_000
        for start in range(0, rows, step):
            n = min(step, rows - start)
            # Finished over 10 days, 40 to 30 days ago: distinct times, in order, as traffic has.
            at = now - dt.timedelta(days=40) + dt.timedelta(days=10 * start / rows)
            seed_history(bench.state, hook, n, at, body="ok" * 20, spread=10 * 86400 * n / rows)
        seed_history(bench.state, hook, recent, now - dt.timedelta(days=1), body="ok" * 20)
    return time.monotonic() - started


def settle(bench: BenchApp) -> None:
    """Vacuum and analyse the freshly filled tables (PostgreSQL), as a month of history would be.

    Otherwise autovacuum's pass over the bulk insert can fall into either phase: the baseline's
    median moved between 5.9 and 8.6 ms from run to run (6.2 to 8.0 ms in the runs after).
    """
    with bench.app.app_context():
        if bench.app.db.engine.dialect.name != "postgresql":
            return
        engine = bench.app.db.engine.execution_options(isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")


def emits(bench: BenchApp, stop: threading.Event, out: list[float], every: float = 0.02) -> None:
    """Emit + commit, one every ``every`` seconds, until ``stop``; each latency (seconds) into ``out``."""
    while not stop.is_set():
        started = time.perf_counter()
        bench.emit(1)
        out.append(time.perf_counter() - started)
        stop.wait(max(0.0, every - (time.perf_counter() - started)))


@contextlib.contextmanager
def emitting(bench: BenchApp) -> Iterator[list[float]]:
    """:func:`emits` on a thread for as long as the block runs; yields the latencies' list."""
    stop = threading.Event()
    out: list[float] = []
    thread = threading.Thread(target=emits, args=(bench, stop, out))
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()


def summary(values: list[float]) -> dict[str, float]:
    """Median, p95 and max in milliseconds."""
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median": statistics.median(ordered) * 1000,
        "p95": ordered[int(0.95 * (len(ordered) - 1))] * 1000,
        "max": ordered[-1] * 1000,
    }


def run(
    kind: str,
    rows: int,
    recent: int,
    fanout: int,
    baseline: float,
    batch: int | None = None,
    wal: bool = False,
    pause: float | None = None,
) -> dict[str, Any]:
    """One measurement on one database (SQLite in WAL mode with ``wal``)."""
    with redis_server() as (redis_url, _label), database(kind) as url:
        bench = BenchApp(url, bench_config(redis_url, TRAKKR_WEBHOOKS_PRUNE_INTERVAL=0))
        try:
            if wal:  # kept in the database file: the prune process uses it too
                with bench.app.app_context(), bench.app.db.engine.connect() as connection:
                    connection.exec_driver_sql("PRAGMA journal_mode=WAL")
            bench.add_webhooks([f"http://127.0.0.1:9/h{i}" for i in range(fanout)])
            seeded = seed(bench, rows, recent)
            settle(bench)
            bench.emit(5)  # warm up the pool and caches
            with emitting(bench) as before:
                time.sleep(baseline)

            env = _env(**{hostapp.ENV: hostapp.env_value(bench.database_url, bench.config)})
            command = [sys.executable, "-m", "flask", "--app", "bench.hostapp:create_app", "webhooks", "prune"]
            command += ["--batch-size", str(batch)] if batch else []
            command += ["--pause", str(pause)] if pause is not None else []
            with emitting(bench) as during:
                started = time.monotonic()
                done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
                took = time.monotonic() - started
            with emitting(bench) as after:
                time.sleep(baseline)
            line = done.stdout.strip().splitlines()[-1]
            numbers = [int(n) for n in re.findall(r"(\d+) (?:deliveries|attempts|events|response bodies)", line)]
            deleted = sum(numbers[:3])
            return {
                "seeded_s": seeded,
                "prune_s": took,
                "line": line,
                "deleted_rows": deleted,
                "rows_per_s": deleted / took,
                "deliveries_per_s": numbers[0] / took,
                "quiet": summary(before + after),
                "before": summary(before),
                "after": summary(after),
                "during": summary(during),
            }
        finally:
            bench.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Run and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rows", type=int, default=1_000_000, help="old deliveries to prune")
    parser.add_argument("--recent", type=int, default=10_000, help="recent deliveries that stay")
    parser.add_argument("--fanout", type=int, default=10, help="webhooks each emit fans out to")
    parser.add_argument("--baseline", type=float, default=20.0, help="seconds of emits before, and after, the prune")
    parser.add_argument("--batch-size", type=int, default=None, help="rows per transaction (default: the setting)")
    parser.add_argument("--pause", type=float, default=None, help="pause after a batch, x its time (default: by db)")
    parser.add_argument("--wal", action="store_true", help="SQLite in WAL mode (docs/retention.md recommends it)")
    args = parser.parse_args(argv)
    r = run(args.database, args.rows, args.recent, args.fanout, args.baseline, args.batch_size, args.wal, args.pause)
    q, d = r["quiet"], r["during"]
    mode = " (WAL)" if args.wal and args.database == "sqlite" else ""
    print(f"database: {args.database}{mode}; {args.rows:,} old deliveries (+{args.recent:,} recent)")
    by_database = f"{retention.DEFAULT_PAUSE:g} PostgreSQL, {retention.PAUSE_BY_DATABASE['sqlite']:g} SQLite"
    pause = f"default ({by_database})" if args.pause is None else args.pause
    print(f"fan-out {args.fanout}; batch size {args.batch_size or 'default (1000)'}; pause {pause}")
    print(f"seeded in {r['seeded_s']:.0f} s; prune: {r['line']} in {r['prune_s']:.1f} s")
    print(f"prune rate: {r['rows_per_s']:,.0f} rows/s ({r['deliveries_per_s']:,.0f} deliveries/s with event + attempt)")
    print()
    print("| emit + commit | emits | median ms | p95 ms | max ms |")
    print("|---|---|---|---|---|")
    rows = (("before the prune", r["before"]), ("after the prune", r["after"]))
    for name, s in (*rows, ("without a prune (both)", q), ("during the prune", d)):
        print(f"| {name} | {s['n']} | {s['median']:.2f} | {s['p95']:.2f} | {s['max']:.1f} |")
    print(f"| ratio | | {d['median'] / q['median']:.2f} × | {d['p95'] / q['p95']:.2f} × | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
