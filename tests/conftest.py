"""Shared fixtures: a real Redis (the machine's or an embedded one) and a real database.

Environment:
* ``REDIS_URL``: a Redis to use when it answers; otherwise an embedded Valkey
  server is started for the session (point it at a closed port to force that path).
* ``DATABASE_URL``: a PostgreSQL URL runs every test on PostgreSQL, in a private
  database created for this pytest session and dropped after it; unset means SQLite.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from e2e.helpers import BRAND_ID, clear_queue  # noqa: E402
from e2e.receiver import Receiver  # noqa: E402
from flask_trakkr_webhooks import TrakkrWebhooks  # noqa: E402
from flask_trakkr_webhooks.testing import EmbeddedRedis, private_postgres_database, redis_answers  # noqa: E402

#: Where the per-test files (SQLite databases, logs) go when the caller chose no ``--basetemp``:
#: a RAM file system when there is one. Each test creates its tables in a fresh SQLite file,
#: and on a disk every CREATE is a journal write and an fsync: 26 ms of a test's 50 ms of
#: set-up, 7 ms on tmpfs.
RAM_DIR = Path("/dev/shm")


def pytest_configure(config: pytest.Config) -> None:
    """Put ``tmp_path`` on :data:`RAM_DIR` (in the controlling process; xdist workers inherit it)."""
    if config.option.basetemp or hasattr(config, "workerinput") or not RAM_DIR.is_dir():
        return
    if not os.access(RAM_DIR, os.W_OK):
        return
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="trakkr-tests-", dir=RAM_DIR))
    config.option.basetemp = str(base)
    config.stash[RAM_BASETEMP] = base


RAM_BASETEMP = pytest.StashKey[Path]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Give the RAM back after a green run; after a red one, keep the files and say where."""
    base = session.config.stash.get(RAM_BASETEMP, None)
    if base is None:
        return
    if exitstatus == 0:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    else:
        sys.stderr.write(f"\nthe failed tests' files (worker logs, databases) are kept in {base}\n")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow tests first, then the end-to-end ones (a stable sort): under xdist they start at once
    and overlap the thousands of short tests, instead of starting last and ending the run alone."""
    items.sort(key=lambda item: (item.get_closest_marker("slow") is None, item.get_closest_marker("e2e") is None))


def normalise_db_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the driver the test extra installs)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


#: Test host names (no DNS here) and the public address the fake resolver gives them.
FAKE_DNS_SUFFIXES = (
    "example",
    "example.com",
    "example.org",
    "example.net",
    "test",
    "slack.com",
    "discord.com",
    "discordapp.com",
    "office.com",
    "office365.com",
    "azure.com",
    "zapier.com",
    "make.com",
    "integromat.com",
)
FAKE_PUBLIC_ADDRESS = "93.184.216.34"


@pytest.fixture(autouse=True)
def fake_dns() -> Iterator[None]:
    """The SSRF guard resolves webhook hosts at save time: answer test names with a public
    address; every other name (``*.invalid``) and every IP literal go the usual way."""
    from flask_trakkr_webhooks import ssrf

    def resolve(host: str, port: int) -> list[str]:
        name = host.rstrip(".").lower()
        if any(name == s or name.endswith("." + s) for s in FAKE_DNS_SUFFIXES):
            return [FAKE_PUBLIC_ADDRESS]
        return ssrf.system_resolver(host, port)

    with ssrf.use_resolver(resolve):
        yield


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a Redis that answers: ``REDIS_URL`` if it does, else a session-wide embedded server."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if redis_answers(url):
        yield url
        return
    server = EmbeddedRedis().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """A private PostgreSQL database for this session when ``DATABASE_URL`` names PostgreSQL."""
    url = os.environ.get("DATABASE_URL")
    if not url or not url.startswith(("postgres://", "postgresql")):
        yield None
        return
    with private_postgres_database(normalise_db_url(url)) as private:
        yield private


@pytest.fixture
def database_url(postgres_url: str | None, tmp_path: Path) -> str:
    """The database of one test: the session's PostgreSQL database, or a fresh SQLite file."""
    # A file, not :memory:, so worker processes in end-to-end tests see the same data.
    return postgres_url or f"sqlite:///{tmp_path / 'app.db'}"


@pytest.fixture
def is_postgres(database_url: str) -> bool:
    """True when this test runs on PostgreSQL."""
    return database_url.startswith("postgresql")


#: One ``SQLAlchemy`` for every test app of this process, as one host has one: each app still
#: gets its own engine and tables, and the extension's models are defined on it once (29 ms
#: of a test's set-up when each app brought a new ``db``).
SHARED_DB = SQLAlchemy()


@pytest.fixture
def make_app(database_url: str, redis_url: str) -> Iterator[Callable[..., Flask]]:
    """Factory: ``make_app(**config)`` returns an app with its own engine and freshly created tables.

    Apps share one ``SQLAlchemy`` (:data:`SHARED_DB`) unless ``own_db=True`` (a test defining
    models of its own).

    ``app.extensions["trakkr_webhooks"]`` is set up; ``app.db`` and ``app.webhooks`` are the
    ``SQLAlchemy`` and ``TrakkrWebhooks`` objects. Each app gets its own RQ queue name so
    tests never see each other's jobs on a shared Redis.
    """
    made: list[tuple[Flask, SQLAlchemy]] = []

    def factory(policy: Callable[[str], bool] | None = None, *, own_db: bool = False, **config: Any) -> Flask:
        app = Flask(f"trakkr_test_{len(made)}")
        app.config.update(
            TESTING=True,
            SQLALCHEMY_DATABASE_URI=database_url,
            TRAKKR_WEBHOOKS_REDIS_URL=redis_url,
            TRAKKR_WEBHOOKS_QUEUE=f"webhooks-test-{secrets.token_hex(4)}",
        )
        app.config.update(config)
        # own_db: a test that adds models of its own must not leave them on the shared metadata.
        db = SQLAlchemy() if own_db else SHARED_DB
        db.init_app(app)
        webhooks = TrakkrWebhooks()
        webhooks.init_app(app, db)
        if policy is not None:
            webhooks.access_policy(policy)
        app.db = db  # type: ignore[attr-defined]
        app.webhooks = webhooks  # type: ignore[attr-defined]
        with app.app_context():
            db.create_all()
        made.append((app, db))
        return app

    yield factory
    for app, db in made:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """An app in testing mode (so no access policy is needed), with every default setting."""
    return make_app()


@pytest.fixture
def client(app: Flask):
    """A test client of ``app``."""
    return app.test_client()


@pytest.fixture
def example(database_url, redis_url, monkeypatch, tmp_path):
    """The example app (``example_app``) with its two demo brands; yields ``(app, api keys by slug)``."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("EXAMPLE_LOCAL_RECEIVERS", "1")
    from example_app import create_app, db

    app = create_app({"TESTING": True, "TRAKKR_WEBHOOKS_QUEUE": f"example-{tmp_path.name}"})
    out = app.test_cli_runner().invoke(args=["seed", "--json"])
    assert out.exit_code == 0, out.output
    keys = {b["slug"]: b["api_key"] for b in json.loads(out.output.strip().splitlines()[-1])}
    try:
        yield app, keys
    finally:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


#: Settings of apps that deliver to a real receiver on 127.0.0.1 within the test.
LOCAL_CONFIG = dict(
    TRAKKR_WEBHOOKS_REQUIRE_HTTPS=False, TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=True, TRAKKR_WEBHOOKS_TIMEOUT=2
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP receiver on 127.0.0.1 that checks the signature (``whsec_e2e``) and the bearer token."""
    with Receiver(secret="whsec_e2e", auth=("Authorization", "Bearer tok_e2e")) as rx:
        yield rx


@pytest.fixture
def plain_receiver() -> Iterator[Receiver]:
    """A real HTTP receiver on 127.0.0.1 that checks nothing (for previews, it must get nothing)."""
    with Receiver() as rx:
        yield rx


@pytest.fixture
def brand_app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    """An app delivering to local receivers, with a policy allowing ``BRAND_ID`` only; its queue cleared after."""
    app = make_app(policy=lambda brand_id: brand_id == BRAND_ID, **LOCAL_CONFIG)
    yield app
    clear_queue(app)


@pytest.fixture
def brand_client(brand_app: Flask):
    """A test client of ``brand_app``."""
    return brand_app.test_client()


@pytest.fixture
def local_app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    """An app delivering to local receivers, in testing mode, without retries; its queue cleared after."""
    app = make_app(**LOCAL_CONFIG, TRAKKR_WEBHOOKS_RETRY_DELAYS=[])
    yield app
    clear_queue(app)


@pytest.fixture
def local_client(local_app: Flask):
    """A test client of ``local_app``."""
    return local_app.test_client()


@pytest.fixture
def new_app_config() -> dict[str, Any]:
    """Settings ``new_app`` adds for a whole test module: override this fixture in the module."""
    return {}


@pytest.fixture
def new_app(make_app: Callable[..., Flask], new_app_config: dict[str, Any]) -> Iterator[Callable[..., Flask]]:
    """Factory: ``new_app(**config)`` makes an app delivering to local receivers (``LOCAL_CONFIG``, then the
    module's ``new_app_config``, then ``config``); every app's queue is cleared after the test."""
    made: list[Flask] = []

    def factory(**config: Any) -> Flask:
        app = make_app(**{**LOCAL_CONFIG, **new_app_config, **config})
        made.append(app)
        return app

    yield factory
    for app in made:
        clear_queue(app)


@pytest.fixture
def limited(make_app: Callable[..., Flask]) -> tuple[Flask, Any, str]:
    """A client of an app with small limits, and a webhook to PATCH: ``(app, client, webhook id)``."""
    app = make_app(
        TRAKKR_WEBHOOKS_MAX_HEADERS=2,
        TRAKKR_WEBHOOKS_MAX_HEADER_BYTES=10,
        TRAKKR_WEBHOOKS_MAX_TEMPLATE_BYTES=30,
        TRAKKR_WEBHOOKS_MAX_EVENTS_PER_WEBHOOK=2,
        TRAKKR_WEBHOOKS_MAX_REQUEST_BYTES=2048,
        TRAKKR_WEBHOOKS_MAX_PAGE_SIZE=3,
    )
    client = app.test_client()
    body = {
        "url": "https://receiver.example.com/hooks",
        "events": ["visibility_changed"],
        "brand_id": "3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c",
    }
    webhook = client.post("/webhooks", json=body)
    assert webhook.status_code == 201
    return app, client, webhook.get_json()["id"]
