"""Fixtures for the receiver kit: every idempotency store against its real backend.

``store_kind`` runs a test for ``memory``, ``redis`` (the machine's Redis or the
embedded one, under a unique key prefix), ``sqlite`` (a file) and, when
``DATABASE_URL`` names PostgreSQL, ``postgresql`` (the session's private database).
"""
from __future__ import annotations

import os
import secrets
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from flask import Flask

from receiver_kit.idempotency import MemoryStore, RedisStore, SQLStore


def store_kinds() -> list[str]:
    kinds = ["memory", "redis", "sqlite"]
    if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql")):
        kinds.append("postgresql")
    return kinds


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_kind" in metafunc.fixturenames:
        metafunc.parametrize("store_kind", store_kinds())
    if "sql_kind" in metafunc.fixturenames:
        metafunc.parametrize("sql_kind", [k for k in store_kinds() if k in ("sqlite", "postgresql")])


@contextmanager
def _store_factory(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """A store factory for ``kind``; every store it made is cleaned up on exit."""
    cleanups: list[Callable[[], None]] = []

    def factory(**kwargs: Any) -> Any:
        if kind == "memory":
            return MemoryStore(**kwargs)
        if kind == "redis":
            import redis

            client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
            prefix = f"rk-test-{secrets.token_hex(6)}:"

            def drop_keys() -> None:
                keys = list(client.scan_iter(match=prefix + "*", count=500))
                if keys:
                    client.delete(*keys)
                client.close()

            cleanups.append(drop_keys)
            return RedisStore(client, prefix=prefix, **kwargs)
        if kind == "sqlite":
            url = f"sqlite:///{tmp_path / f'idem-{secrets.token_hex(3)}.db'}"
        else:
            url = request.getfixturevalue("postgres_url")
        store = SQLStore(url, table_name=f"rk_idem_{secrets.token_hex(4)}", **kwargs)
        store.create_table()

        def drop_table() -> None:
            store.table.drop(store.engine, checkfirst=True)
            store.engine.dispose()

        cleanups.append(drop_table)
        return store

    try:
        yield factory
    finally:
        for cleanup in reversed(cleanups):
            cleanup()


@pytest.fixture
def make_store(store_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``make_store(**ttls)``: a fresh, isolated store of ``store_kind``; cleaned up after the test."""
    with _store_factory(store_kind, request, tmp_path) as factory:
        yield factory


@pytest.fixture
def make_sql_store(sql_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Like ``make_store``, for the SQL backends only (``sqlite``, and ``postgresql`` when configured)."""
    with _store_factory(sql_kind, request, tmp_path) as factory:
        yield factory


@pytest.fixture
def store(make_store: Callable[..., Any]) -> Any:
    """A store of ``store_kind`` with the default TTLs."""
    return make_store()


class Calls:
    """A thread-safe call counter for handlers."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def hit(self) -> int:
        with self.lock:
            self.count += 1
            return self.count


@pytest.fixture
def calls() -> Calls:
    """A fresh call counter."""
    return Calls()


@pytest.fixture
def flask_app() -> Flask:
    """A bare Flask app that turns handler exceptions into 500s, like production."""
    app = Flask("receiver_kit_test")
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app
