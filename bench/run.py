"""Run every benchmark, print the table, write ``bench/RESULTS.md``.

    .venv/bin/python -m bench.run            # full run (about 10 minutes on 2 cores); writes bench/RESULTS.md
    .venv/bin/python -m bench.run --quick    # fewer repeats and deliveries; prints only
    .venv/bin/python -m bench.run --only 1,3 # some sections (1 instant, 2 100 ms, 3 emit, 4 kit, 5 memory, 6 metrics)

Each measurement is repeated and shown as ``median (min–max)`` beside its baseline,
measured in the same invocation. Redis: the machine's at 127.0.0.1:6379 when it
answers (a queue of this run's own), else a private embedded server. PostgreSQL at
127.0.0.1:5432 (database ``test``, override with ``BENCH_POSTGRES_URL``) when it answers:
a database is created for the run and dropped after it; otherwise its rows say "not
measured". Every process started here is stopped here; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, emit, kit, throughput
from flask_trakkr_webhooks.config import DEFAULTS

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
#: The hand-written part of RESULTS.md between these markers survives a re-run.
NOTES_START, NOTES_END = "<!-- notes:start -->", "<!-- notes:end -->"
DATABASES = ("sqlite", "postgresql")
LABEL = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def machine(redis_label: str, postgres: str | None) -> list[str]:
    """Lines describing the machine, the versions and the date."""
    import psutil

    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "?"

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {os.cpu_count()} cores ({model}), "
        f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM, {platform.system()} {platform.release()}",
        f"- Load average when the run started: {load} (the machine is shared; see the busy column of each section)",
        f"- Python {platform.python_version()}; RQ {version('rq')}; redis-py {version('redis')}; "
        f"SQLAlchemy {version('SQLAlchemy')}; Flask {version('flask')}; "
        f"Flask-SQLAlchemy {version('flask-sqlalchemy')}; "
        f"requests {version('requests')}; psycopg {version('psycopg')}",
        f"- Servers: {redis_label}; PostgreSQL {postgres or 'not reachable (its rows are not measured)'}; "
        "SQLite " + __import__("sqlite3").sqlite_version,
    ]


def fmt(stats: Any, digits: int = 0) -> str:
    """``median (min–max)`` or ``–``."""
    return stats.show(digits) if stats is not None else "–"


def verdict(ok: bool) -> str:
    """The target column."""
    return "**met**" if ok else "**not met**"


class Report:
    """Collects markdown lines and prints them as they come."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.targets: list[tuple[str, str, bool | None]] = []

    def add(self, *lines: str) -> None:
        """Add and print lines."""
        for line in lines:
            print(line, flush=True)
            self.lines.append(line)

    def target(self, name: str, measured: str, ok: bool | None) -> None:
        """Record a target's outcome (None: not measured)."""
        self.targets.append((name, measured, ok))


def _throughput_runs(
    report: Report,
    databases: dict[str, str | None],
    redis_url: str,
    name: str,
    *,
    delay: float,
    layout: throughput.Layout,
    repeats: int,
    threads: int,
    log: Callable[[str], None],
) -> Iterator[tuple[str, Any, dict[str, Any], float]]:
    """``(database, run, its summary, machine busy %)`` per reachable database (a row says the others
    were not measured)."""
    for kind, url in databases.items():
        if url is None:
            report.add(f"| {LABEL[kind]} | not measured (not reachable) | | | | | | |")
            continue
        log(f"  {name}, {LABEL[kind]}")
        busy = common.Busy()
        with common.database(kind) as db:
            run = throughput.throughput(
                db, redis_url, delay=delay, layout=layout, repeats=repeats, baseline_threads=threads, log=log
            )
        yield kind, run, throughput.summarize(run), busy.percent()


def section_instant(
    report: Report, databases: dict[str, str | None], redis_url: str, quick: bool, log: Callable[[str], None]
) -> None:
    """1: instant receiver, worker vs one plain requests.Session loop."""
    layout = throughput.Layout(webhooks=50, ports=4, events=20 if quick else 40)
    repeats = 3 if quick else 5
    report.add(
        "",
        "## 1. Throughput to an instant local receiver",
        "",
        f"One `flask webhooks worker` process (default settings: CONCURRENCY {DEFAULTS['CONCURRENCY']}, "
        f"PER_HOST_CONCURRENCY {DEFAULTS['PER_HOST_CONCURRENCY']}, BATCH_SIZE {DEFAULTS['BATCH_SIZE']}), "
        f"{layout.webhooks} webhooks on {layout.ports} receiver ports, "
        f"{layout.deliveries:,} signed deliveries per round, {repeats} rounds; each round is followed by one "
        "plain `requests.Session` loop POSTing the same bodies and headers to the same receiver. "
        "Deliveries/s counts from the commit that enqueues a round to the last delivery recorded `succeeded`.",
        "",
        "| database | worker deliveries/s | plain requests.Session/s | worker ÷ plain | target ≥ 0.6 | "
        "worker CPU per delivery | plain CPU per request | machine busy |",
        "|---|---|---|---|---|---|---|---|",
    )
    for kind, run, result, busy in _throughput_runs(
        report,
        databases,
        redis_url,
        "1. instant receiver",
        delay=0.0,
        layout=layout,
        repeats=repeats,
        threads=1,
        log=log,
    ):
        ok = result["ratio"].median >= 0.6
        report.add(
            f"| {LABEL[kind]} | {fmt(result['worker'])} | {fmt(result['raw'])} | {fmt(result['ratio'], 2)} | "
            f"{verdict(ok)} | {run.cpu_us:,.0f} µs | {result['raw_cpu_us'].median:,.0f} µs | {busy:.0f}% |"
        )
        report.target(
            f"1. instant receiver, {LABEL[kind]}: ≥ 0.6 × plain requests",
            f"{result['ratio'].median:.2f} × ({result['worker'].median:,.0f} vs {result['raw'].median:,.0f}/s)",
            ok,
        )
        cpu_ratio = run.cpu_us / result["raw_cpu_us"].median
        report.target(
            f"1b. worker CPU per delivery, {LABEL[kind]}: ≤ 1.3 × plain requests' CPU per request",
            f"{cpu_ratio:.2f} × ({run.cpu_us:,.0f} vs {result['raw_cpu_us'].median:,.0f} µs)",
            cpu_ratio <= 1.3,
        )
        if run.failed:
            report.add(f"| | {run.failed} deliveries did not succeed | | | | | | |")


def section_metrics(
    report: Report, databases: dict[str, str | None], redis_url: str, quick: bool, log: Callable[[str], None]
) -> None:
    """6: instant receiver with metrics on (served on a port) vs off."""
    layout = throughput.Layout(webhooks=50, ports=4, events=20 if quick else 40)
    pairs, repeats = (2, 3) if quick else (5, 4)
    report.add(
        "",
        "## 6. Metrics on vs off (instant receiver)",
        "",
        f"Section 1's setup on SQLite, {layout.deliveries:,} deliveries per round. Each arm is a fresh worker "
        f"process running {repeats} rounds, the first not counted (warm-up); "
        f"the arms alternate ({pairs} pairs, the order swapped each pair), "
        "so both see the same machine load. On: `TRAKKR_WEBHOOKS_METRICS` with `METRICS_PORT` served; off: "
        "`TRAKKR_WEBHOOKS_METRICS = False`. The per-attempt log line is written in both.",
        "",
        "| arm | deliveries/s | worker CPU per delivery |",
        "|---|---|---|",
    )
    rates: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    arms = {
        "off": {"TRAKKR_WEBHOOKS_METRICS": False},
        "on": {"TRAKKR_WEBHOOKS_METRICS": True, "TRAKKR_WEBHOOKS_METRICS_PORT": common.free_port()},
    }
    for pair in range(pairs):
        for arm in ("off", "on") if pair % 2 == 0 else ("on", "off"):
            log(f"  6. metrics {arm}, pair {pair + 1}")
            with common.database("sqlite") as db:
                run = throughput.throughput(
                    db,
                    redis_url,
                    delay=0.0,
                    layout=layout,
                    repeats=repeats,
                    baseline_threads=0,
                    log=log,
                    config=arms[arm],
                )
            rates[arm].extend(run.worker[1:])
            cpu[arm].append(run.cpu_us)
    summary = {arm: common.stats(values) for arm, values in rates.items()}
    for arm in ("off", "on"):
        report.add(f"| {arm} | {fmt(summary[arm])} | {common.stats(cpu[arm]).median:,.0f} µs |")
    ratio = summary["on"].median / summary["off"].median
    cpu_ratio = common.stats(cpu["on"]).median / common.stats(cpu["off"]).median
    ok = ratio >= 0.95
    report.add("", f"On ÷ off: throughput (medians) **{ratio:.3f}**; worker CPU per delivery {cpu_ratio:.3f}")
    report.target(
        "6. metrics on ÷ off, instant receiver: ≥ 0.95",
        f"{ratio:.3f} × ({summary['on'].median:,.0f} vs {summary['off'].median:,.0f}/s)",
        ok,
    )


def section_delayed(
    report: Report, databases: dict[str, str | None], redis_url: str, quick: bool, log: Callable[[str], None]
) -> None:
    """2: receivers answering after 100 ms and after 500 ms, worker vs the ideal and vs plain threads."""
    layout = throughput.Layout(webhooks=64, ports=16, events=16 if quick else 32)
    repeats = 3 if quick else 5
    concurrency, per_host = DEFAULTS["CONCURRENCY"], DEFAULTS["PER_HOST_CONCURRENCY"]
    in_flight = min(concurrency, per_host * layout.ports)
    report.add(
        "",
        "## 2. Throughput to slow receivers (100 ms and 500 ms)",
        "",
        f"{layout.webhooks} webhooks on {layout.ports} receiver ports (each port is a host for the per-host "
        f"cap), so in-flight = min(CONCURRENCY {concurrency}, PER_HOST_CONCURRENCY {per_host} × "
        f"{layout.ports} ports) = {in_flight}; ideal = {in_flight} / answer time. {layout.deliveries:,} "
        f"deliveries per round, {repeats} rounds; each followed by a pool of {in_flight} threads sending the "
        "same requests with plain `requests.Session`s (what Python threads + requests reach here).",
        "",
        "| receiver | database | worker deliveries/s | ideal | worker ÷ ideal | target | "
        f"{in_flight} plain requests threads/s | worker CPU per delivery | machine busy |",
        "|---|---|---|---|---|---|---|---|---|",
    )
    for delay, goal in ((0.1, 600), (0.5, 150)):
        ideal = in_flight / delay
        answer = f"{delay * 1000:.0f} ms"
        for kind, run, result, busy in _throughput_runs(
            report,
            databases,
            redis_url,
            f"2. {answer} receiver",
            delay=delay,
            layout=layout,
            repeats=repeats,
            threads=in_flight,
            log=log,
        ):
            ok = result["worker"].median >= goal
            report.add(
                f"| {answer} | {LABEL[kind]} | {fmt(result['worker'])} | {ideal:.0f} | "
                f"{result['worker'].median / ideal:.2f} | ≥ {goal}/s {verdict(ok)} | {fmt(result['raw'])} | "
                f"{run.cpu_us:,.0f} µs | {busy:.0f}% |"
            )
            report.target(
                f"2. {answer} receiver, {LABEL[kind]}: ≥ {goal}/s",
                f"{result['worker'].median:,.0f}/s (ideal {ideal:.0f}, plain threads {result['raw'].median:,.0f}/s)",
                ok,
            )


def section_emit(
    report: Report, databases: dict[str, str | None], redis_url: str, quick: bool, log: Callable[[str], None]
) -> None:
    """3: emit + commit fan-out."""
    repeats = 3 if quick else 5
    report.add(
        "",
        "## 3. `emit` + commit fan-out",
        "",
        f"One event to N webhooks of one brand, `emit(...)` then `db.session.commit()` (which enqueues the "
        f"jobs and marks the deliveries queued), {repeats} repeats after one untimed warm-up. SQL statements "
        "as sent through the DBAPI cursor (an `executemany` counts once); Redis round trips as commands or "
        "pipelines sent.",
        "",
    )
    results: dict[str, dict[int, dict[str, Any]]] = {}
    for kind, url in databases.items():
        if url is None:
            continue
        log(f"  3. emit fan-out, {LABEL[kind]}")
        with common.database(kind) as db:
            results[kind] = emit.emit_fanout(db, redis_url, repeats=repeats)
    header = "| webhooks |"
    rule = "|---|"
    for kind in databases:
        header += f" {LABEL[kind]} ms | {LABEL[kind]} µs/webhook | {LABEL[kind]} SQL statements |"
        rule += "---|---|---|"
    header += " Redis round trips |"
    rule += "---|"
    report.add(header, rule)
    for fanout in emit.FANOUTS:
        row = f"| {fanout:,} |"
        redis_trips = "–"
        for kind in databases:
            measured = results.get(kind, {}).get(fanout)
            if measured is None:
                row += " not measured | | |"
                continue
            row += f" {fmt(measured['ms'], 1)} | {measured['us_per_webhook']:,.1f} | {measured['sql']} |"
            redis_trips = str(measured["redis"])
        report.add(row + f" {redis_trips} |")
    for kind, measured in results.items():
        at_1k = measured[1000]["ms"].median
        growth = measured[10000]["ms"].median / at_1k
        ok = at_1k < 150 and growth <= 13
        report.target(
            f"3. emit to 1,000 webhooks, {LABEL[kind]}: < 150 ms, linear",
            f"{at_1k:.0f} ms; 10,000 takes {growth:.1f} × as long",
            ok,
        )
    for kind in databases:
        if kind not in results:
            report.target(f"3. emit to 1,000 webhooks, {LABEL[kind]}: < 150 ms, linear", "not measured", None)


def section_kit(report: Report, redis_url: str, quick: bool, log: Callable[[str], None]) -> None:
    """4: receiver kit vs bare hmac."""
    log("  4. receiver kit")
    results = kit.measure(redis_url, repeats=3 if quick else 7, quick=quick)
    report.add(
        "",
        "## 4. Receiver kit: verify + idempotency check vs bare `hmac`",
        "",
        "µs per request, median (min–max) of repeated `timeit` loops. *bare hmac* is the product page's "
        "snippet; *kit + MemoryStore* is `verify_signature` plus `claim` + `complete` of a new event id; "
        "*repeat* is a delivery of an event already done; JSON parsing (the same for both sides) is left out.",
        "",
        "| body | bare hmac | kit verify_signature only | kit + MemoryStore | ÷ bare | target ≤ 1.5 × | "
        "kit + MemoryStore (repeat) | kit + RedisStore |",
        "|---|---|---|---|---|---|---|---|",
    )
    for label, measured in results.items():
        bare = measured["bare hmac"]
        ratio = measured["kit + MemoryStore"].median / bare.median
        ok = ratio <= 1.5
        report.add(
            f"| {label} | {fmt(bare, 2)} | {fmt(measured['kit verify_signature only'], 2)} | "
            f"{fmt(measured['kit + MemoryStore'], 2)} | {ratio:.2f} | {verdict(ok)} | "
            f"{fmt(measured['kit + MemoryStore (repeat)'], 2)} | {fmt(measured.get('kit + RedisStore'), 1)} |"
        )
        report.target(
            f"4. receiver kit, {label} body: ≤ 1.5 × bare hmac",
            f"{ratio:.2f} × ({measured['kit + MemoryStore'].median:.2f} vs {bare.median:.2f} µs)",
            ok,
        )


def section_memory(
    report: Report, databases: dict[str, str | None], redis_url: str, quick: bool, log: Callable[[str], None]
) -> None:
    """5: worker RSS after 1,000 and after 50,000 deliveries."""
    kind = "postgresql" if databases.get("postgresql") else "sqlite"
    checkpoints = (1000, 10000) if quick else (1000, 50000)
    log(f"  5. worker memory, {LABEL[kind]}")
    busy = common.Busy()
    with common.database(kind) as db:
        result = throughput.memory(db, redis_url, checkpoints, log=log)
    (n0, rss0), (n1, rss1) = result.points[0], result.points[-1]
    growth = (rss1 - rss0) / rss0 * 100
    ok = growth < 10
    report.add(
        "",
        "## 5. Worker memory",
        "",
        f"RSS of one `flask webhooks worker` process ({LABEL[kind]}, instant receiver, 100 webhooks, a backlog "
        f"of about two rounds kept queued) after each number of deliveries; {n1:,} deliveries took "
        f"{result.seconds:.0f} s (machine busy {busy.percent():.0f}%).",
        "",
        "| after deliveries | RSS | growth since the first point | target < 10% |",
        "|---|---|---|---|",
    )
    for index, (count, rss) in enumerate(result.points):
        change = "–" if index == 0 else f"{(rss - rss0) / rss0 * 100:+.1f}%"
        report.add(f"| {count:,} | {rss / 2**20:.1f} MiB | {change} | {verdict(ok) if index else ''} |")
    report.target(f"5. worker RSS growth {n0:,} → {n1:,} deliveries: < 10%", f"{growth:+.1f}%", ok)


def write_results(report: Report, header: list[str]) -> None:
    """Write RESULTS.md: header, targets, sections, then the preserved notes."""
    notes = ""
    if RESULTS.exists():
        text = RESULTS.read_text()
        if NOTES_START in text and NOTES_END in text:
            notes = text[text.index(NOTES_START) : text.index(NOTES_END) + len(NOTES_END)]
    if not notes:
        notes = f"{NOTES_START}\n## Notes\n\n(Analysis and profiles go here; kept across re-runs.)\n{NOTES_END}"
    lines = [
        "# Benchmark results",
        "",
        "Written by `.venv/bin/python -m bench.run` (the README's Benchmarks section "
        "says what each number measures); the Notes at the end are kept across runs.",
        "",
        *header,
        "",
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
    ]
    for name, measured, ok in report.targets:
        lines.append(f"| {name} | {measured} | {'not measured' if ok is None else verdict(ok)} |")
    lines += report.lines + ["", notes, ""]
    RESULTS.write_text("\n".join(lines))
    print(f"\nwrote {RESULTS}")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="flask-trakkr-webhooks benchmarks")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and deliveries; RESULTS.md untouched")
    parser.add_argument("--only", default="1,2,3,4,5,6", help="sections to run, e.g. 1,3")
    parser.add_argument("--write", action="store_true", help="write RESULTS.md even with --quick or --only")
    args = parser.parse_args(argv)
    only = {int(x) for x in args.only.split(",") if x.strip()}
    started = time.monotonic()
    report = Report()

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    postgres = common.postgres_version()
    databases: dict[str, str | None] = {"sqlite": "sqlite", "postgresql": "postgresql" if postgres else None}
    with common.redis_server() as (redis_url, redis_label):
        header = machine(redis_label, postgres)
        for line in header:
            print(line)
        if 1 in only:
            section_instant(report, databases, redis_url, args.quick, log)
        if 2 in only:
            section_delayed(report, databases, redis_url, args.quick, log)
        if 3 in only:
            section_emit(report, databases, redis_url, args.quick, log)
        if 4 in only:
            section_kit(report, redis_url, args.quick, log)
        if 5 in only:
            section_memory(report, databases, redis_url, args.quick, log)
        if 6 in only:
            section_metrics(report, databases, redis_url, args.quick, log)
    header.append(f"- Mode: {'quick' if args.quick else 'full'}; took {time.monotonic() - started:.0f} s")
    print("\nTargets:")
    for name, measured, ok in report.targets:
        print(f"  {name}: {measured} -> {'not measured' if ok is None else ('met' if ok else 'NOT MET')}")
    if args.write or (not args.quick and only == {1, 2, 3, 4, 5, 6}):
        write_results(report, header)
    return 0


if __name__ == "__main__":
    sys.exit(main())
