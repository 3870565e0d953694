"""Fixtures for the receiver kit: every idempotency store against its real backend.

``store_kind`` runs a test for ``memory``, ``redis`` (the machine's Redis or the
embedded one, under a unique key prefix), ``sqlite`` (a file), ``django``
(``DjangoStore`` on a SQLite file through the ORM) and, when ``DATABASE_URL``
names PostgreSQL, ``postgresql`` (the session's private database).

Django is configured once per test process (``django_settings``): a SQLite file,
the ``receiver_kit.django`` app migrated, CSRF middleware on (so the adapter's
exemption is tested), and the URL patterns of ``test_django``.

Only the standard library, pytest and the kit are imported at the top of this file:
Flask, requests, redis, SQLAlchemy and Django are imported inside the fixtures that
need them. So the kit's core tests run in a virtual environment holding the kit's
wheel alone (``.ci/receiver-kit``): there ``RECEIVER_KIT_CORE_ONLY=1`` limits the
store matrix to ``memory``; everywhere else a missing backend fails loudly.
"""

from __future__ import annotations

import os
import secrets
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from receiver_kit.idempotency import MemoryStore, RedisStore

if TYPE_CHECKING:
    import requests
    from flask import Flask

#: The URL patterns Django serves; test_django fills ``urlpatterns`` before it starts a server.
DJANGO_URLS = types.ModuleType("receiver_kit_test_urls")
DJANGO_URLS.urlpatterns = []  # type: ignore[attr-defined]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "packaging: builds the kit's wheel and installs it into a fresh virtual environment"
    )


def store_kinds() -> list[str]:
    """The stores the matrix runs: every backend, or ``memory`` alone for the core-only run."""
    if os.environ.get("RECEIVER_KIT_CORE_ONLY"):
        return ["memory"]
    kinds = ["memory", "redis", "sqlite", "django"]
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
        if kind == "django":
            request.getfixturevalue("django_settings")
            from receiver_kit.django.models import IdempotencyKey
            from receiver_kit.django.store import DjangoStore

            cleanups.append(lambda: IdempotencyKey.objects.all().delete())
            return DjangoStore(**kwargs)
        from receiver_kit.idempotency import SQLStore

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
    from flask import Flask

    app = Flask("receiver_kit_test")
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


@pytest.fixture(scope="session")
def django_settings(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Django configured for this process (once) and the ``receiver_kit.django`` migration applied."""
    import django
    from django.conf import settings
    from django.core.management import call_command

    if not settings.configured:
        options: dict[str, Any] = {"timeout": 30}
        if django.VERSION >= (5, 1):
            # Take the write lock at BEGIN: 50 racing writers queue instead of failing to upgrade a read lock.
            options["transaction_mode"] = "IMMEDIATE"
        settings.configure(
            DEBUG=False,
            SECRET_KEY="receiver-kit-tests",
            ALLOWED_HOSTS=["127.0.0.1"],
            ROOT_URLCONF=DJANGO_URLS,
            INSTALLED_APPS=["receiver_kit.django"],
            MIDDLEWARE=["django.middleware.common.CommonMiddleware", "django.middleware.csrf.CsrfViewMiddleware"],
            DATABASES={
                "default": {
                    "ENGINE": "django.db.backends.sqlite3",
                    "NAME": str(tmp_path_factory.mktemp("django") / "receiver.sqlite3"),
                    "OPTIONS": options,
                }
            },
            USE_TZ=True,
        )
        django.setup()
        call_command("migrate", verbosity=0)
    return settings


def deliver_at_once(url: str, body: bytes, headers: dict[str, str], n: int = 50) -> list[requests.Response]:
    """POST the same delivery from ``n`` threads released together (one connection each, 30 s bound)."""
    import requests

    headers = {**headers, "Connection": "close"}
    barrier = threading.Barrier(n)
    responses: list[Any] = [None] * n

    def one(i: int) -> None:
        barrier.wait()
        responses[i] = requests.post(url, data=body, headers=headers, timeout=30)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(isinstance(r, requests.Response) for r in responses)
    return responses


def summarise(responses: list[requests.Response]) -> dict[str, int]:
    """Count answers: ``handled`` (200 that ran), ``duplicate`` (200 that did not), else by status."""
    kinds: dict[str, int] = {}
    for r in responses:
        if r.status_code == 200:
            kind = "duplicate" if r.json().get("duplicate") else "handled"
        else:
            kind = str(r.status_code)
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds
