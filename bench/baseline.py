"""Issue 15: the sender users would write themselves, beside ours in the same run; and latency.

The baseline is one RQ job per delivery that signs the body with HMAC-SHA256 and calls
``requests.post`` (:func:`bench.rq_job.deliver`), run by a forking ``rq worker`` and by ``rq worker -w
rq.worker.SimpleWorker``. Ours is one ``flask webhooks worker`` process (default settings).
All three send ~1 KB signed JSON bodies to the same receiver process (:mod:`bench.receiver`).

* **throughput**: deliveries/s and the sender's CPU per delivery (the worker process and the
  job processes it forks), to a receiver answering at once and one answering after 100 ms;
  rounds alternate between the senders so they see the same machine load;
* **latency**: commit-to-receipt at low load: single events 200 ms apart; for ours, from the
  host's ``commit`` (which enqueues) to the receiver reading the request; for the baseline,
  from ``enqueue``. Both clocks are the machine's monotonic clock.

    python -m bench.baseline [--database sqlite|postgresql] [--quick]

Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timezone
from typing import Any

import sqlalchemy as sa

from bench.common import (
    ROOT,
    SECRET,
    BenchApp,
    ReceiverProcess,
    WorkerProcess,
    _env,
    bench_config,
    database,
    redis_server,
    stats,
    wait_until,
)
from bench.kit import body_of


def _bodies(count: int, start: int) -> list[bytes]:
    """``count`` ~1 KB Trakkr-shaped bodies, each with its own event id."""
    template = json.loads(body_of(1024))
    out = []
    for n in range(start, start + count):
        event_id = f"evt_{n:024x}"
        template["event"]["id"] = template["meta"]["event_id"] = template["meta"]["idempotency_key"] = event_id
        out.append(json.dumps(template, separators=(",", ":")).encode())
    return out


class RQWorker:
    """``rq worker`` (forking, or ``SimpleWorker``) serving one queue of :func:`bench.rq_job.deliver` jobs."""

    def __init__(self, redis_url: str, queue: str, simple: bool) -> None:
        import redis
        from rq import Queue

        self.connection = redis.Redis.from_url(redis_url)
        self.queue = Queue(queue, connection=self.connection)
        args = [sys.executable, "-m", "rq.cli", "worker", "--url", redis_url, "--quiet", queue]
        if simple:
            args[4:4] = ["-w", "rq.worker.SimpleWorker"]
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        from rq import Worker

        wait_until(lambda: Worker.count(queue=self.queue) > 0, 60, "the rq worker to register", interval=0.1)

    def enqueue(self, url: str, bodies: list[bytes]) -> None:
        """One job per body, in one pipeline."""
        from rq import Queue

        jobs = [Queue.prepare_data("bench.rq_job.deliver", (url, body, SECRET), result_ttl=0) for body in bodies]
        self.queue.enqueue_many(jobs)

    def cpu(self) -> float:
        """CPU seconds of the worker and of the job processes it forked (and waited for)."""
        import psutil

        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system + times.children_user + times.children_system

    def stop(self) -> None:
        """Stop the worker and empty its queue."""
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.queue.empty()  # type: ignore[no-untyped-call]
        self.connection.close()


def _round(rx: ReceiverProcess, count: int, send: Callable[[], None], cpu: Callable[[], float]) -> tuple[float, float]:
    """Run ``send`` (which makes ``count`` deliveries happen); (deliveries/s, CPU µs per delivery)."""
    goal = rx.stats()["requests"] + count
    before, start = cpu(), time.monotonic()
    send()
    wait_until(lambda: rx.stats()["requests"] >= goal, 600, "the round to be received", 0.01)
    elapsed = time.monotonic() - start
    return count / elapsed, (cpu() - before) / count * 1e6


def throughput(database_url: str, redis_url: str, delay: float, repeats: int, quick: bool) -> dict[str, Any]:
    """Rounds of ours, the SimpleWorker baseline and the forking baseline, alternating."""
    import psutil

    # Round sizes for about 5-15 s each at the rates these reach here.
    sizes = {"ours": 2048, "SimpleWorker": 600, "rq worker (forking)": 150}
    if delay:
        sizes = {"ours": 2048, "SimpleWorker": 60, "rq worker (forking)": 40}
    if quick:
        sizes = {name: max(20, size // 4) for name, size in sizes.items()}
    out: dict[str, dict[str, list[float]]] = {name: {"rate": [], "cpu": []} for name in sizes}
    # 64 webhooks on 16 ports (hosts, for the per-host cap): ours runs its default 128 in flight.
    with ReceiverProcess("--ports", "16", "--delay", str(delay)) as rx:
        bench = BenchApp(database_url, bench_config(redis_url))
        webhooks = 64
        bench.add_webhooks([f"{rx.url(i)}/hooks/{i}" for i in range(webhooks)])
        simple = RQWorker(redis_url, bench.config["TRAKKR_WEBHOOKS_QUEUE"] + "-simple", simple=True)
        forking = RQWorker(redis_url, bench.config["TRAKKR_WEBHOOKS_QUEUE"] + "-forking", simple=False)
        counter = 0
        try:
            with WorkerProcess(bench) as worker:
                worker.wait_ready()
                process = psutil.Process(worker.proc.pid)

                def ours_cpu() -> float:
                    times = process.cpu_times()
                    return times.user + times.system

                _round(rx, webhooks * 2, lambda: bench.emit(2), ours_cpu)  # warm-up
                for rq_worker in (simple, forking):
                    rq_worker.enqueue(rx.url() + "/hooks/warm", _bodies(4, 0))
                for _ in range(repeats):
                    rate, cpu = _round(rx, sizes["ours"], lambda: bench.emit(sizes["ours"] // webhooks), ours_cpu)
                    out["ours"]["rate"].append(rate)
                    out["ours"]["cpu"].append(cpu)
                    for name, rq_worker in (("SimpleWorker", simple), ("rq worker (forking)", forking)):
                        bodies = _bodies(sizes[name], counter)
                        counter += len(bodies)
                        url = rx.url(1) + "/hooks/rq"
                        rate, cpu = _round(
                            rx, len(bodies), lambda w=rq_worker, b=bodies, u=url: w.enqueue(u, b), rq_worker.cpu
                        )
                        out[name]["rate"].append(rate)
                        out[name]["cpu"].append(cpu)
                    print("    " + ", ".join(f"{n} {v['rate'][-1]:,.0f}/s" for n, v in out.items()), file=sys.stderr)
        finally:
            simple.stop()
            forking.stop()
            bench.cleanup()
    return {name: {"rate": stats(v["rate"]), "cpu": stats(v["cpu"])} for name, v in out.items()}


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def latency(database_url: str, redis_url: str, events: int) -> dict[str, tuple[float, float]]:
    """Commit-to-receipt p50 and p99 (ms) of ours and of the SimpleWorker baseline, 200 ms apart;
    and ours split in three: the host's ``commit`` returning, the attempt's start (its
    ``started_at``), and receipt."""

    with tempfile.TemporaryDirectory(prefix="trakkr-latency-") as tmp:
        log_path = os.path.join(tmp, "requests.json")
        sent: dict[str, float] = {}
        commits: list[float] = []
        wall: dict[str, float] = {}  # the commit's wall-clock time, to compare with attempts' started_at
        started: dict[str, float] = {}
        rx = ReceiverProcess("--log", log_path)
        bench = BenchApp(database_url, bench_config(redis_url))
        simple = RQWorker(redis_url, bench.config["TRAKKR_WEBHOOKS_QUEUE"] + "-simple", simple=True)
        try:
            bench.add_webhooks([f"{rx.url()}/hooks/ours"])
            with WorkerProcess(bench) as worker:
                worker.wait_ready()
                bench.emit(3)  # warm: connections open, the app loaded
                simple.enqueue(rx.url() + "/hooks/rq", _bodies(3, 10**9))
                time.sleep(1.0)
                for n in range(events):
                    with bench.app.app_context():
                        event_id = bench.app.webhooks.emit("visibility_changed", brand=bench.brand, data={"n": n})
                        sent[event_id], wall[event_id] = time.monotonic(), time.time()
                        bench.app.db.session.commit()
                        commits.append((time.monotonic() - sent[event_id]) * 1000)
                    time.sleep(0.2)
                for body in _bodies(events, 2 * 10**9):
                    event_id = json.loads(body)["meta"]["event_id"]
                    sent[event_id] = time.monotonic()
                    simple.enqueue(rx.url() + "/hooks/rq", [body])
                    time.sleep(0.2)
                goal = 2 * events + 6
                wait_until(lambda: rx.stats()["requests"] >= goal, 60, "every request to arrive", 0.05)
            with bench.app.app_context():
                models = bench.state.models
                query = sa.select(models.Delivery.event_id, models.Attempt.started_at).join(
                    models.Delivery, models.Delivery.id == models.Attempt.delivery_id
                )
                for event_id, at in bench.app.db.session.execute(query):
                    at = at if at.tzinfo else at.replace(tzinfo=timezone.utc)
                    started[event_id] = at.timestamp()
                bench.app.db.session.remove()
        finally:
            rx.stop()
            simple.stop()
            bench.cleanup()
        with open(log_path) as fh:
            log = json.load(fh)["requests"]
    out: dict[str, list[float]] = {"ours": [], "SimpleWorker": []}
    to_attempt, attempt_to_receipt = [], []
    for entry in log:
        start = sent.get(entry["event"])
        if start is not None:
            out["ours" if entry["path"].endswith("/ours") else "SimpleWorker"].append((entry["at"] - start) * 1000)
            if entry["event"] in wall and entry["event"] in started:
                began = (started[entry["event"]] - wall[entry["event"]]) * 1000
                to_attempt.append(began)
                attempt_to_receipt.append((entry["at"] - start) * 1000 - began)
    result = {name: _percentiles(values) for name, values in out.items()}
    result["ours: the host's commit (with its enqueue) returned"] = _percentiles(commits)
    result["ours: commit to the attempt's start (queue, RQ, claim, load)"] = _percentiles(to_attempt)
    result["ours: the attempt's start to receipt (build, sign, send)"] = _percentiles(attempt_to_receipt)
    return result


def main() -> None:
    """Run both parts on one database; print Markdown."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--quick", action="store_true", help="smaller rounds, 2 repeats, 50 latency events")
    parser.add_argument("--part", choices=("both", "throughput", "latency"), default="both")
    args = parser.parse_args()
    repeats, events = (2, 50) if args.quick else (3, 200)
    with redis_server() as (redis_url, label):
        print(f"## Baselines and latency ({args.database}; {label})\n")
        print("| receiver | sender | deliveries/s | CPU per delivery |\n|---|---|---|---|")
        for delay in (0.0, 0.1) if args.part != "latency" else ():
            with database(args.database) as url:
                result = throughput(url, redis_url, delay, repeats, args.quick)
            for name, value in result.items():
                receiver = "answers at once" if not delay else f"answers after {delay * 1000:.0f} ms"
                print(f"| {receiver} | {name} | {value['rate'].show()} | {value['cpu'].show()} µs |")
        if args.part == "throughput":
            return
        with database(args.database) as url:
            lat = latency(url, redis_url, events)
        print("\n| sender | commit-to-receipt p50 | p99 | events |\n|---|---|---|---|")
        for name, (p50, p99) in lat.items():
            print(f"| {name} | {p50:.1f} ms | {p99:.1f} ms | {events} |")


if __name__ == "__main__":
    main()
