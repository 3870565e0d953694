"""Benchmark of issue 17: 1,000 webhooks on one chat-platform-like host answering after 100 ms.

One event each (a report run notifying 1,000 brands' channels), one worker process, both
ways side by side in one run, rounds alternating so both see the same machine load:

* **per-host cap** (before): generic webhooks on one host, which the worker treats as one
  host: ``PER_HOST_CONCURRENCY`` (8) in flight, so at most 8 / 0.1 s = 80/s;
* **per-endpoint cap** (after): the same URLs as ``slack`` webhooks, a shared platform host:
  concurrency capped per webhook URL (and each paced to Slack's 1/s, which one event per
  webhook never reaches), so ``CONCURRENCY`` (32) in flight.

    python -m bench.pacing [--database sqlite|postgresql] [--rounds N] [--webhooks N]

Prints a Markdown table (deliveries/s per round, medians, the ratio).
"""

from __future__ import annotations

import argparse
import time
import uuid

from bench.common import (
    BenchApp,
    ReceiverProcess,
    WorkerProcess,
    bench_config,
    database,
    redis_server,
    stats,
    wait_until,
)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--webhooks", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.1)
    args = parser.parse_args(argv)
    results: dict[str, list[float]] = {"per-host cap (generic)": [], "per-endpoint cap (slack)": []}
    with (
        redis_server() as (redis_url, _),
        database(args.database) as database_url,
        ReceiverProcess("--ports", "1", "--delay", str(args.delay)) as rx,
    ):
        bench = BenchApp(database_url, bench_config(redis_url))
        brands = {name: {"id": str(uuid.uuid4()), "name": name, "website": "https://a.example"} for name in results}
        try:
            for (name, brand), provider in zip(brands.items(), ("webhook", "slack"), strict=True):
                urls = [f"{rx.url(0)}/services/{name[:4]}/{i}/{uuid.uuid4().hex}" for i in range(args.webhooks)]
                bench.add_webhooks(urls, provider=provider, brand=brand)
            with WorkerProcess(bench) as worker:
                worker.wait_ready()
                done = 0
                for round_no in range(args.rounds):
                    for name, brand in brands.items():
                        sent_goal = rx.stats()["requests"] + args.webhooks
                        start = time.monotonic()
                        bench.emit(1, brand=brand)
                        wait_until(lambda goal=sent_goal: rx.stats()["requests"] >= goal, 600, "the round", 0.02)
                        done += args.webhooks
                        wait_until(lambda goal=done: bench.count_done()[0] >= goal, 600, "the round recorded", 0.02)
                        rate = args.webhooks / (time.monotonic() - start)
                        results[name].append(rate)
                        print(f"round {round_no + 1} {name}: {rate:,.0f}/s", flush=True)
            failed = bench.count_done()[1]
        finally:
            bench.cleanup()
    before, after = (stats(v) for v in results.values())
    print()
    print(
        f"{args.webhooks} webhooks on one host answering after {args.delay * 1000:.0f} ms, one event each, "
        f"{args.database}, {args.rounds} rounds (median, range); {failed} failed"
    )
    print()
    print("| concurrency cap | deliveries/s |")
    print("|---|---|")
    for name, s in zip(results, (before, after), strict=True):
        print(f"| {name} | {s.show()} |")
    print(f"| after ÷ before | {after.median / before.median:.2f} × |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
