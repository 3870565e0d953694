"""One attempt (``flask_trakkr_webhooks/attempt.py``): the SSRF guard at send time, a refused
connection, a template webhook's rendered body.

Real Redis, a real database and a real HTTP receiver; the job functions are called directly.
"""

from __future__ import annotations

import pytest

from e2e.helpers import delivery_ids as _ids
from e2e.helpers import delivery_rows as _deliveries
from e2e.helpers import emit, make_webhook
from e2e.helpers import process as _run


@pytest.fixture
def new_app_config():
    """What ``new_app`` adds to every app of this module: a short stuck-claim time."""
    return {"TRAKKR_WEBHOOKS_STUCK_AFTER": 5}


def test_the_ssrf_guard_fails_a_private_address_permanently(new_app, receiver):
    app = new_app(TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=False)
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    _run(app, _ids(app))
    [row] = _deliveries(app)
    assert row.status == "failed"
    [attempt] = row.attempts
    assert attempt.error_type == "BlockedAddress" and "loopback" in attempt.error_message
    assert "TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS" in attempt.error_message
    assert receiver.received == []


def test_connection_refused_is_retried(new_app):
    from flask_trakkr_webhooks.testing import free_port

    app = new_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[60])
    make_webhook(app, f"http://127.0.0.1:{free_port()}/hooks")
    emit(app)
    _run(app, _ids(app))
    [row] = _deliveries(app)
    assert row.status == "retrying"
    assert row.attempts[0].error_type == "ConnectionError" and row.attempts[0].status_code is None


def test_a_template_webhook_gets_the_rendered_body(new_app, receiver):
    app = new_app()
    make_webhook(
        app,
        receiver.url + "/hooks",
        provider="slack",
        template={"text": "{{brand.name}} {{event.type}}", "score": "{{event.data.current_score}}"},
    )
    emit(app)
    _run(app, _ids(app))
    [got] = receiver.received
    assert got.json == {"text": "Acme visibility_changed", "score": 57.5} and got.signature_ok
