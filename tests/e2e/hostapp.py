"""The host app a worker subprocess runs: ``flask --app e2e.hostapp:create_app webhooks worker``.

Configured entirely by environment variables, so the test and its worker share one
database and one queue: ``E2E_DATABASE_URL`` and every ``TRAKKR_WEBHOOKS_*`` key (JSON
values, e.g. ``TRAKKR_WEBHOOKS_RETRY_DELAYS='[1, 2, 4]'``).
"""

from __future__ import annotations

import json
import os
from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_trakkr_webhooks import TrakkrWebhooks

ENV_PREFIX = "TRAKKR_WEBHOOKS_"


def config_from_env(environ: Any = os.environ) -> dict[str, Any]:
    """The ``TRAKKR_WEBHOOKS_*`` settings in ``environ`` (JSON-decoded where they are JSON)."""
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if name.startswith(ENV_PREFIX):
            try:
                out[name] = json.loads(raw)
            except ValueError:
                out[name] = raw
    return out


def env_for(app: Flask) -> dict[str, str]:
    """Environment variables that make :func:`create_app` match ``app`` (database, Redis, queue, settings)."""
    env = {"E2E_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"]}
    for name, value in app.config.items():
        if name.startswith(ENV_PREFIX) and value is not None:
            env[name] = json.dumps(value)
    return env


def create_app(webhooks: TrakkrWebhooks | None = None) -> Flask:
    """The app factory (testing mode: no encryption key needed); ``webhooks`` is the host's extension object."""
    app = Flask("e2e_host")
    app.config.update(TESTING=True, SQLALCHEMY_DATABASE_URI=os.environ["E2E_DATABASE_URL"])
    app.config.update(config_from_env())
    db = SQLAlchemy()
    db.init_app(app)
    (webhooks or TrakkrWebhooks()).init_app(app, db)
    return app
