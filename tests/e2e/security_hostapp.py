"""The e2e host app plus an ``@webhooks.on_disabled`` handler, as a host would register one.

``flask --app e2e.security_hostapp:create_app webhooks worker``: the handler appends one JSON
line per disabled webhook to the file named by ``E2E_DISABLED_LOG``, so a test can see that
the worker process told the host, once, after the commit.
"""

from __future__ import annotations

import json
import os
from typing import Any

import sqlalchemy as sa
from flask import Flask

from e2e.hostapp import create_app as create_base_app
from flask_trakkr_webhooks import TrakkrWebhooks, get_state


def create_app() -> Flask:
    """The e2e host app with a handler that records each disabled webhook."""
    webhooks = TrakkrWebhooks()
    app = create_base_app(webhooks)
    state = get_state(app)
    path = os.environ["E2E_DISABLED_LOG"]

    @webhooks.on_disabled
    def tell_owner(webhook: Any) -> None:
        with state.db.engine.connect() as conn:  # what another connection sees: committed or not
            committed = conn.execute(
                sa.text("SELECT active FROM trakkr_webhooks WHERE id = :id"), {"id": webhook.id}
            ).scalar_one()
        line = {
            "id": webhook.id,
            "active": webhook.active,
            "committed_active": bool(committed),
            "reason": webhook.disabled_reason,
            "pid": os.getpid(),
        }
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")

    return app
