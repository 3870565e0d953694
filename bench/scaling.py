"""Issue 15 target 5 and issue 16's capacity figures: 1, 2 and 4 worker processes on one machine.

For each database and each number of ``flask webhooks worker`` processes (default settings),
rounds of signed ~1 KB deliveries go to one instant receiver process (50 webhooks on 4 ports).
Besides deliveries/s, the CPU each party spent per delivery is read from the kernel's
per-process counters (psutil) over the rounds:

* **workers**: the worker processes (and their scheduler children);
* **Redis**: the server at the benchmark's URL, from its own ``INFO cpu`` counters;
* **PostgreSQL**: every ``postgres`` process (the backends serving the workers and the host,
  plus the checkpointer and WAL writer); SQLite runs inside the worker and host processes;
* **receiver**: the receiver process;
* **machine busy**: the share of both cores in use, every process counted.

Where a row stops growing with more workers while the machine is near 100% busy, the machine's
CPU is the limit, and the per-party columns say who spends it (the next machine adds workers'
CPU; Redis and the database are shared).

    python -m bench.scaling [--database sqlite|postgresql|both] [--workers 1,2,4] [--quick]

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field

from bench.common import (
    BenchApp,
    Busy,
    ReceiverProcess,
    WorkerProcess,
    bench_config,
    database,
    postgres_version,
    redis_server,
    stats,
    wait_until,
)
from bench.throughput import Layout, deliver_round


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and of its live children."""
    import psutil

    try:
        root = psutil.Process(pid)
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                continue
        return total
    except psutil.NoSuchProcess:
        return 0.0


def _named_cpu(names: tuple[str, ...]) -> Callable[[], float]:
    """A reader of the summed CPU seconds of every process whose name is one of ``names``.

    Processes that exit between two reads take their CPU with them; PostgreSQL backends of the
    benchmark live as long as their pools, so the rounds' work stays counted."""
    import psutil

    def read() -> float:
        total = 0.0
        for proc in psutil.process_iter(["name", "cpu_times"]):
            if proc.info["name"] in names and proc.info["cpu_times"] is not None:
                total += proc.info["cpu_times"].user + proc.info["cpu_times"].system
        return total

    return read


def _redis_cpu(redis_url: str) -> Callable[[], float]:
    """A reader of the Redis server's CPU seconds (its own ``INFO cpu`` counters: works for a
    server in a container or run as another user too)."""
    import redis

    client = redis.Redis.from_url(redis_url)

    def read() -> float:
        info = client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    return read


@dataclass
class Point:
    """One (database, workers) measurement."""

    database: str
    workers: int
    rates: list[float] = field(default_factory=list)
    cpu_us: dict[str, float] = field(default_factory=dict)  # party -> µs per delivery
    busy: float = 0.0


def measure(
    database_url: str,
    kind: str,
    redis_url: str,
    workers: int,
    *,
    rounds: int,
    layout: Layout,
    log: Callable[[str], None],
) -> Point:
    """Rounds of ``layout`` deliveries through ``workers`` worker processes."""
    point = Point(kind, workers)
    with ReceiverProcess("--ports", str(layout.ports)) as rx, ExitStack() as stack:
        bench = BenchApp(database_url, bench_config(redis_url))
        stack.callback(bench.cleanup)
        bench.add_webhooks([f"{rx.url(i)}/hooks/{i}" for i in range(layout.webhooks)])
        procs = [stack.enter_context(WorkerProcess(bench)) for _ in range(workers)]
        from rq import Queue, Worker

        queue = Queue(bench.state.settings.queue, connection=bench.state.redis())
        wait_until(lambda: Worker.count(queue=queue) >= workers, 120, "the workers to register", 0.1)
        warm = Layout(layout.webhooks, layout.ports, events=2 * workers)
        deliver_round(bench, rx, warm, 0)
        done = warm.deliveries
        readers: dict[str, Callable[[], float]] = {
            "workers": lambda: sum(_tree_cpu(p.proc.pid) for p in procs),
            "Redis": _redis_cpu(redis_url),
            "receiver": lambda: _tree_cpu(rx.proc.pid),
        }
        if kind == "postgresql":
            readers["PostgreSQL"] = _named_cpu(("postgres",))
        before = {party: read() for party, read in readers.items()}
        busy = Busy()
        for index in range(rounds):
            rate = deliver_round(bench, rx, layout, done)
            done += layout.deliveries
            point.rates.append(rate)
            log(f"    {kind}, {workers} worker(s), round {index + 1}: {rate:,.0f}/s")
        point.busy = busy.percent()
        delivered = rounds * layout.deliveries
        point.cpu_us = {party: (read() - before[party]) / delivered * 1e6 for party, read in readers.items()}
    return point


def run(
    kinds: list[str], worker_counts: list[int], *, quick: bool, log: Callable[[str], None] = print
) -> Iterator[Point]:
    """Points for every database and worker count, on one Redis."""
    layout = Layout(webhooks=50, ports=4, events=20 if quick else 60)
    rounds = 2 if quick else 4
    with redis_server() as (redis_url, label):
        log(f"Redis: {label}")
        for kind in kinds:
            for workers in worker_counts:
                with database(kind) as url:
                    yield measure(url, kind, redis_url, workers, rounds=rounds, layout=layout, log=log)


def table(points: list[Point]) -> list[str]:
    """The Markdown table of ``points``."""
    lines = [
        "| database | workers | deliveries/s | × 1 worker | CPU µs per delivery: workers | Redis | PostgreSQL | "
        "receiver | machine busy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    first: dict[str, float] = {}
    for p in points:
        rate = stats(p.rates)
        first.setdefault(p.database, rate.median)
        pg = f"{p.cpu_us['PostgreSQL']:,.0f}" if "PostgreSQL" in p.cpu_us else "(in-process)"
        lines.append(
            f"| {p.database} | {p.workers} | {rate.show()} | {rate.median / first[p.database]:.2f} | "
            f"{p.cpu_us['workers']:,.0f} | {p.cpu_us['Redis']:,.0f} | {pg} | "
            f"{p.cpu_us['receiver']:,.0f} | {p.busy:.0f}% |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts, e.g. 1,2,4")
    parser.add_argument("--quick", action="store_true", help="1,000 deliveries per round, 2 rounds")
    args = parser.parse_args(argv)
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in kinds and postgres_version() is None:
        print("PostgreSQL at 127.0.0.1:5432 does not answer: measuring SQLite only", file=sys.stderr)
        kinds.remove("postgresql")
    counts = [int(n) for n in args.workers.split(",") if n.strip()]
    started = time.monotonic()
    points = list(run(kinds, counts, quick=args.quick, log=lambda line: print(line, file=sys.stderr, flush=True)))
    print("\n".join(table(points)))
    print(f"\n({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
