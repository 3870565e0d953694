"""A small host app in Trakkr's domain: brands with API keys, emitting webhook events.

Run it with ``flask --app example_app run`` (see the README's quick start, or
``python3 dev.py demo`` for the whole system at once).

Environment:
* ``DATABASE_URL``: any SQLAlchemy URL (default: SQLite in ``instance/example.db``).
* ``REDIS_URL``: the Redis for RQ (default ``redis://127.0.0.1:6379/0``).
* ``EXAMPLE_LOCAL_RECEIVERS=1``: allow ``http://`` and private addresses, so webhooks
  can point at a receiver on this machine. A demo setting: never in production.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_trakkr_webhooks import TrakkrWebhooks

db = SQLAlchemy()
webhooks = TrakkrWebhooks()


def database_url() -> str:
    """``DATABASE_URL`` with ``postgresql://`` mapped to the psycopg 3 driver."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The application factory."""
    app = Flask(__name__, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    local = os.environ.get("EXAMPLE_LOCAL_RECEIVERS") == "1"
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url() or f"sqlite:///{os.path.join(app.instance_path, 'example.db')}",
        TRAKKR_WEBHOOKS_REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        TRAKKR_WEBHOOKS_QUEUE=os.environ.get("TRAKKR_WEBHOOKS_QUEUE", "webhooks"),
        # Demo receivers run on 127.0.0.1 over plain HTTP; production keeps both guards on.
        TRAKKR_WEBHOOKS_REQUIRE_HTTPS=not local,
        TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=local,
        # The web portal, behind this app's session login (portal_login.py).
        TRAKKR_WEBHOOKS_PORTAL=True,
        SECRET_KEY=os.environ.get("EXAMPLE_SECRET_KEY") or os.urandom(32),
    )
    if os.environ.get("TRAKKR_WEBHOOKS_ENCRYPTION_KEY"):
        app.config["TRAKKR_WEBHOOKS_ENCRYPTION_KEY"] = os.environ["TRAKKR_WEBHOOKS_ENCRYPTION_KEY"]
    app.config.update(config or {})

    db.init_app(app)
    webhooks.init_app(app, db)

    from . import auth, cli, models, portal_login, routes  # noqa: F401  (models register on db)

    webhooks.access_policy(auth.can_manage)
    webhooks.portal_brands(portal_login.brands)
    app.before_request(auth.authenticate)
    app.before_request(portal_login.require_login)
    app.register_blueprint(routes.bp)
    app.register_blueprint(portal_login.bp)
    app.cli.add_command(cli.seed)
    app.cli.add_command(cli.simulate)

    with app.app_context():
        db.create_all()
    return app
