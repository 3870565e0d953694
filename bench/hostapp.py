"""The host app of a benchmark worker: ``flask --app bench.hostapp:create_app webhooks worker``.

The benchmark process and its worker process build the same app from one JSON
environment variable, ``BENCH_APP`` = ``{"database": URL, "config": {TRAKKR_WEBHOOKS_*: ...}}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_trakkr_webhooks import TrakkrWebhooks

ENV = "BENCH_APP"


def build(database: str, config: Mapping[str, Any], name: str = "bench_host") -> Flask:
    """An app on ``database`` with ``config``; ``app.db`` and ``app.webhooks`` are set."""
    app = Flask(name)
    # testing mode: credentials need no encryption key here; nothing else depends on it.
    app.config.update(TESTING=True, SQLALCHEMY_DATABASE_URI=database, **dict(config))
    db = SQLAlchemy()
    db.init_app(app)
    app.db = db  # type: ignore[attr-defined]
    app.webhooks = TrakkrWebhooks(app, db)  # type: ignore[attr-defined]
    return app


def env_value(database: str, config: Mapping[str, Any]) -> str:
    """The ``BENCH_APP`` value that makes :func:`create_app` build this app."""
    return json.dumps({"database": database, "config": dict(config)})


def create_app() -> Flask:
    """The factory the worker process loads."""
    spec = json.loads(os.environ[ENV])
    return build(spec["database"], spec["config"], name="bench_worker")
