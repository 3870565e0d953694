"""What every benchmark shares: statistics, services (Redis, databases), the receiver and
worker processes, and the benchmark app with its webhooks.

Every process started here is stopped by the context manager that started it; all
traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import hostapp

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
EVENT_TYPE = "visibility_changed"
DATA = {"previous_score": 41.0, "current_score": 57.5, "change_percent": 40.2, "direction": "up"}
SECRET = "whsec_bench"
TERMINAL = ("succeeded", "failed", "cancelled")


# -- numbers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """Median, min and max of repeated measurements."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        """The median."""
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        """The smallest value."""
        return min(self.values)

    @property
    def high(self) -> float:
        """The largest value."""
        return max(self.values)

    def show(self, digits: int = 0) -> str:
        """``median (min–max)``."""
        return f"{self.median:,.{digits}f} ({self.low:,.{digits}f}–{self.high:,.{digits}f})"


class Busy:
    """Share of the machine's CPU in use while a section ran (every process, not only ours)."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._start = psutil.cpu_times()

    def percent(self) -> float:
        """Busy share of all cores since this object was made, in percent."""
        end = self._psutil.cpu_times()
        total = sum(end) - sum(self._start)
        idle = (end.idle + getattr(end, "iowait", 0)) - (self._start.idle + getattr(self._start, "iowait", 0))
        return 100.0 * (total - idle) / total if total else 0.0


def stats(values: Sequence[float]) -> Stats:
    """:class:`Stats` of ``values``."""
    return Stats(tuple(values))


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until truthy; ``TimeoutError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
    return value


# -- services ------------------------------------------------------------------------------


@contextmanager
def redis_server() -> Iterator[tuple[str, str]]:
    """``(url, label)`` of a Redis: the machine's if it answers, else a private embedded one."""
    from flask_trakkr_webhooks.testing import EmbeddedRedis, redis_answers

    if redis_answers(REDIS_URL):
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        version = client.info("server").get("redis_version", "?")
        client.close()
        yield REDIS_URL, f"Redis {version} (127.0.0.1:6379)"
        return
    with EmbeddedRedis() as server:
        import redis

        client = redis.Redis.from_url(server.url)
        info = client.info("server")
        client.close()
        yield server.url, f"embedded Valkey {info.get('valkey_version', info.get('redis_version', '?'))}"


def postgres_version() -> str | None:
    """The PostgreSQL server version at :data:`POSTGRES_URL`, or None when it does not answer."""
    try:
        engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            version = conn.execute(sa.text("SHOW server_version")).scalar()
        engine.dispose()
        return str(version).split()[0]
    except Exception:  # not reachable: the PostgreSQL rows say "not measured"
        return None


@contextmanager
def database(kind: str) -> Iterator[str]:
    """A private, empty database: a SQLite file in a temporary directory, or a PostgreSQL
    database created for this run and dropped after it."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="trakkr-bench-") as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    from flask_trakkr_webhooks.testing import private_postgres_database

    with private_postgres_database(POSTGRES_URL, prefix="trakkr_bench") as url:
        yield url


# -- the app -------------------------------------------------------------------------------


def bench_config(redis_url: str, **extra: Any) -> dict[str, Any]:
    """Settings of a benchmark app: its own queue; plain HTTP to 127.0.0.1 allowed."""
    config = {
        "TRAKKR_WEBHOOKS_REDIS_URL": redis_url,
        "TRAKKR_WEBHOOKS_QUEUE": f"bench-{secrets.token_hex(4)}",
        "TRAKKR_WEBHOOKS_REQUIRE_HTTPS": False,
        "TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS": True,
    }
    config.update(extra)
    return config


class BenchApp:
    """The benchmark's app (in this process) and the settings its worker process uses."""

    def __init__(self, database_url: str, config: dict[str, Any]) -> None:
        self.database_url = database_url
        self.config = config
        self.app = hostapp.build(database_url, config)
        self.brand = {"id": str(uuid.uuid4()), "name": "Acme", "website": "https://acme.example"}
        with self.app.app_context():
            self.app.db.create_all()

    @property
    def state(self) -> Any:
        """The extension's state."""
        from flask_trakkr_webhooks import get_state

        return get_state(self.app)

    def add_webhooks(
        self, urls: Sequence[str], secret: str | None = SECRET, *, provider: str = "webhook", brand: Any = None
    ) -> list[str]:
        """One webhook per URL for the bench brand (or ``brand``), one bulk INSERT; return their ids."""
        from flask_trakkr_webhooks import ids

        now = ids.utcnow()
        rows = [
            dict(
                id=ids.new_id(ids.WEBHOOK),
                brand_id=(brand or self.brand)["id"],
                url=url,
                events=[EVENT_TYPE],
                provider=provider,
                active=True,
                auth_type="none",
                signing_secret=secret,
                headers={},
                created_at=now,
                updated_at=now,
            )
            for url in urls
        ]
        with self.app.app_context():
            table = self.state.models.Webhook.__table__
            self.app.db.session.execute(sa.insert(table), rows)
            self.app.db.session.commit()
        return [r["id"] for r in rows]

    def emit(self, events: int = 1, *, brand: Any = None) -> list[str]:
        """``events`` emits in one transaction, then commit (which enqueues); return the event ids."""
        with self.app.app_context():
            out = [self.app.webhooks.emit(EVENT_TYPE, brand=brand or self.brand, data=DATA) for _ in range(events)]
            self.app.db.session.commit()
        return out

    def count_done(self) -> tuple[int, int]:
        """``(terminal, failed)`` deliveries so far."""
        with self.app.app_context():
            D = self.state.models.Delivery
            rows = dict(
                self.app.db.session.execute(
                    sa.select(D.status, sa.func.count()).where(D.status.in_(TERMINAL)).group_by(D.status)
                ).all()
            )
            self.app.db.session.remove()
        return sum(rows.values()), rows.get("failed", 0) + rows.get("cancelled", 0)

    def cleanup(self) -> None:
        """Remove the queue's keys from Redis and close the database connections."""
        from flask_trakkr_webhooks.testing import clear_queue

        clear_queue(self.state)
        with self.app.app_context():
            self.app.db.session.remove()
            self.app.db.engine.dispose()


# -- processes -----------------------------------------------------------------------------


class ReceiverProcess:
    """``python -m bench.receiver`` in its own process (see :mod:`bench.receiver`)."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.receiver", *args],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the receiver process did not start")
        self.ports: list[int] = json.loads(line)["ports"]
        self._session: Any = None

    def url(self, index: int = 0) -> str:
        """Base URL of port ``index`` (modulo the number of ports)."""
        return f"http://127.0.0.1:{self.ports[index % len(self.ports)]}"

    def stats(self) -> dict[str, int]:
        """The receiver's counters (``GET /_stats``)."""
        import requests

        if self._session is None:  # one keep-alive connection for all the polling
            self._session = requests.Session()
        return self._session.get(self.url() + "/_stats", timeout=5).json()

    def stop(self) -> None:
        """SIGTERM (it writes its log), then wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> ReceiverProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class WorkerProcess:
    """``flask --app bench.hostapp:create_app webhooks worker`` for a :class:`BenchApp`."""

    def __init__(self, bench: BenchApp, log_path: str | None = None) -> None:
        self.bench = bench
        env = _env(**{hostapp.ENV: hostapp.env_value(bench.database_url, bench.config)})
        self._log = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "bench.hostapp:create_app", "webhooks", "worker"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the worker is registered on the queue."""
        from rq import Queue, Worker

        queue = Queue(self.bench.state.settings.queue, connection=self.bench.state.redis())

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the worker exited with {self.proc.returncode}")
            return Worker.count(queue=queue) > 0

        wait_until(ready, timeout, "the worker to register", interval=0.1)

    def rss(self) -> int:
        """Resident memory of the worker process (bytes); its scheduler child is not included."""
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss

    def stop(self) -> None:
        """Warm shutdown, then make sure the whole process group is gone."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(5)
        if self._log is not subprocess.DEVNULL:
            self._log.close()  # type: ignore[union-attr]

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _env(**extra: str) -> dict[str, str]:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), PYTHONUNBUFFERED="1"
    )
    env.update(extra)
    return env
