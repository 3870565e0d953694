"""Benchmarks 1, 2 and 5: one worker process delivering to a local receiver process.

* **instant receiver** (1): deliveries/s of one ``flask webhooks worker`` process vs a
  plain ``requests.Session`` loop POSTing the same bodies and headers, one after the
  other, to the same receiver; the two alternate round by round, so both see the same
  machine load.
* **100 ms receiver** (2): deliveries/s vs the ideal ``in-flight / 0.1 s``, in-flight
  being ``min(CONCURRENCY, PER_HOST_CONCURRENCY x receiver ports)``; beside it, as many
  plain ``requests.Session`` loops on threads as the worker has in flight, sending the
  same requests: what Python threads and ``requests`` reach on this machine.
* **memory** (5): the worker's RSS after 1,000 and after 50,000 deliveries.

A round emits its events in one transaction; the clock starts just before the commit
(which enqueues the jobs) and stops when the last delivery of the round is recorded
as ``succeeded`` in the database, so deliveries/s counts finished, recorded work.
The worker is warmed up (app loaded, engine started, connections open) before the
first round.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from bench.common import BenchApp, ReceiverProcess, WorkerProcess, bench_config, stats, wait_until

#: Most seconds one round may take before the benchmark gives up on it.
ROUND_TIMEOUT = 300.0


@dataclass
class Layout:
    """The webhooks of a run: ``webhooks`` endpoints spread over ``ports`` receiver ports."""

    webhooks: int = 50
    ports: int = 4
    events: int = 40  # per round: deliveries = webhooks x events

    @property
    def deliveries(self) -> int:
        """Deliveries per round."""
        return self.webhooks * self.events


@dataclass
class Run:
    """What a throughput run measured."""

    worker: list[float] = field(default_factory=list)  # deliveries/s per round
    raw: list[float] = field(default_factory=list)  # raw client requests/s per round
    raw_cpu_us: list[float] = field(default_factory=list)  # raw client CPU per request
    failed: int = 0
    cpu_us: float = 0.0  # worker process CPU (user + system) per delivery over the rounds
    settings: dict[str, Any] = field(default_factory=dict)


def deliver_round(bench: BenchApp, rx: ReceiverProcess, layout: Layout, done_before: int) -> float:
    """Emit one round's events, wait until every delivery is recorded; return deliveries/s."""
    app = bench.app
    sent_goal = rx.stats()["requests"] + layout.deliveries
    with app.app_context():
        for _ in range(layout.events):
            app.webhooks.emit("visibility_changed", brand=bench.brand, data={"n": 1})
        start = time.monotonic()
        app.db.session.commit()  # enqueues the round's jobs
    goal = done_before + layout.deliveries
    # Cheap polling first (the receiver's counter), the database only for the tail.
    wait_until(lambda: rx.stats()["requests"] >= sent_goal, ROUND_TIMEOUT, "the receiver to get the round", 0.02)
    wait_until(lambda: bench.count_done()[0] >= goal, ROUND_TIMEOUT, "the round to be recorded", 0.01)
    return layout.deliveries / (time.monotonic() - start)


def sample_messages(bench: BenchApp, count: int) -> list[Any]:
    """``count`` requests exactly as the worker builds them (body bytes, headers, URL)."""
    import sqlalchemy as sa

    from flask_trakkr_webhooks import claim, ids, message

    app = bench.app
    with app.app_context():
        D = bench.state.models.Delivery
        rows = app.db.session.execute(sa.select(D.id).order_by(D.created_at.desc()).limit(count)).scalars().all()
        works = claim.load(bench.state, dict.fromkeys(rows, 1))
        stamp = int(ids.utcnow().timestamp())
        out = [message.build(w.endpoint, w.payload, delivery_id=w.delivery_id, timestamp=stamp) for w in works]
        app.db.session.remove()
    return out


class RawClient:
    """The baseline: plain ``requests``, one ``Session`` loop (``threads=1``) or a pool of
    ``threads`` threads with a ``Session`` each, taking the next message as they go.
    Threads and sessions live across rounds, so connections are warm, as the worker's are."""

    def __init__(self, threads: int) -> None:
        import threading
        from concurrent.futures import ThreadPoolExecutor

        self.threads = threads
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None

    def _send(self, msg: Any) -> None:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        response = session.post(msg.url, data=msg.body, headers=msg.headers, timeout=10)
        _ = response.content  # read the answer, as the worker does
        if response.status_code != 200:
            raise RuntimeError(f"the receiver answered {response.status_code}")

    def round(self, messages: list[Any]) -> tuple[float, float]:
        """Send ``messages``; ``(requests/s, CPU µs per request of this process)``."""
        start, cpu = time.monotonic(), time.process_time()
        if self._pool is None:
            for msg in messages:
                self._send(msg)
        else:
            list(self._pool.map(self._send, messages))
        elapsed, cpu = time.monotonic() - start, time.process_time() - cpu
        return len(messages) / elapsed, cpu / len(messages) * 1e6

    def close(self) -> None:
        """Stop the threads."""
        if self._pool is not None:
            self._pool.shutdown()


def throughput(
    database_url: str,
    redis_url: str,
    *,
    delay: float,
    layout: Layout,
    repeats: int,
    baseline_threads: int,
    log: Callable[[str], None] = print,
    config: dict[str, Any] | None = None,
) -> Run:
    """Rounds of one worker process delivering to a receiver answering after ``delay`` seconds,
    each followed by a round of plain ``requests`` loops (``baseline_threads`` of them) sending
    the same requests, when ``baseline_threads`` > 0."""
    import psutil

    run = Run()
    with ReceiverProcess("--ports", str(layout.ports), "--delay", str(delay)) as rx:
        bench = BenchApp(database_url, bench_config(redis_url, **(config or {})))
        settings = bench.state.settings
        run.settings = {
            "concurrency": settings.concurrency,
            "per_host": settings.per_host_concurrency,
            "batch_size": settings.batch_size,
            "ports": layout.ports,
            "webhooks": layout.webhooks,
            "deliveries_per_round": layout.deliveries,
        }
        try:
            bench.add_webhooks([f"{rx.url(i)}/hooks/{i}" for i in range(layout.webhooks)])
            with WorkerProcess(bench) as worker:
                worker.wait_ready()
                warm = Layout(layout.webhooks, layout.ports, events=2)
                deliver_round(bench, rx, warm, 0)
                done = warm.deliveries
                raw_client = RawClient(baseline_threads) if baseline_threads else None
                messages: list[Any] = []
                process, cpu = psutil.Process(worker.proc.pid), 0.0
                for index in range(repeats):
                    before = process.cpu_times()
                    rate = deliver_round(bench, rx, layout, done)
                    after = process.cpu_times()
                    cpu += (after.user - before.user) + (after.system - before.system)
                    done += layout.deliveries
                    run.worker.append(rate)
                    line = f"    round {index + 1}: worker {rate:,.0f}/s"
                    if raw_client is not None:
                        if not messages:  # the first round's requests, rebuilt; connections warmed
                            messages = sample_messages(bench, layout.deliveries)
                            raw_client.round(messages[:200])
                        raw, cpu_us = raw_client.round(messages)
                        run.raw.append(raw)
                        run.raw_cpu_us.append(cpu_us)
                        line += (
                            f", plain requests ({baseline_threads} thread{'s' * (baseline_threads > 1)}) {raw:,.0f}/s"
                        )
                    log(line)
                if raw_client is not None:
                    raw_client.close()
                run.failed = bench.count_done()[1]
                run.cpu_us = cpu / (repeats * layout.deliveries) * 1e6
        finally:
            bench.cleanup()
    return run


@dataclass
class Memory:
    """RSS of the worker process after a number of deliveries."""

    points: list[tuple[int, int]] = field(default_factory=list)  # (deliveries done, RSS bytes)
    seconds: float = 0.0


def memory(
    database_url: str, redis_url: str, checkpoints: tuple[int, ...], *, log: Callable[[str], None] = print
) -> Memory:
    """Feed one worker steadily (a bounded backlog) and sample its RSS at each checkpoint."""
    result = Memory()
    layout = Layout(webhooks=100, ports=4, events=10)
    with ReceiverProcess("--ports", str(layout.ports)) as rx:
        bench = BenchApp(database_url, bench_config(redis_url))
        try:
            bench.add_webhooks([f"{rx.url(i)}/hooks/{i}" for i in range(layout.webhooks)])
            with WorkerProcess(bench) as worker:
                worker.wait_ready()
                emitted, start = 0, time.monotonic()
                todo = list(checkpoints)
                deadline = start + 40 * 60
                while todo:
                    done, _ = bench.count_done()
                    if done >= todo[0]:
                        result.points.append((done, worker.rss()))
                        log(f"    after {done:,} deliveries: RSS {result.points[-1][1] / 2**20:.1f} MiB")
                        todo.pop(0)
                        continue
                    # Keep about two rounds queued: the worker never starves, Redis never balloons.
                    if emitted < todo[-1] and emitted - done < 2 * layout.deliveries:
                        bench.emit(layout.events)
                        emitted += layout.deliveries
                    else:
                        time.sleep(0.05)
                    if time.monotonic() > deadline:
                        raise TimeoutError("the memory benchmark took over 40 minutes")
                result.seconds = time.monotonic() - start
        finally:
            bench.cleanup()
    return result


def summarize(run: Run) -> dict[str, Any]:
    """Medians and ranges of a run."""
    out: dict[str, Any] = {"worker": stats(run.worker), "settings": run.settings, "failed": run.failed}
    if run.raw:
        out["raw"] = stats(run.raw)
        out["raw_cpu_us"] = stats(run.raw_cpu_us)
        out["ratio"] = stats([w / r for w, r in zip(run.worker, run.raw, strict=True)])
    return out
