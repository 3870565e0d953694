"""``flask webhooks worker --burst`` and ``flask webhooks dispatch``, run through Flask's CLI runner."""
from __future__ import annotations

import pytest

from e2e.helpers import clear_queue, deliveries, emit, make_webhook
from e2e.receiver import Receiver

CONFIG = dict(TRAKKR_WEBHOOKS_REQUIRE_HTTPS=False, TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=True,
              TRAKKR_WEBHOOKS_TIMEOUT=2)


@pytest.fixture
def app(make_app):
    app = make_app(**CONFIG)
    yield app
    clear_queue(app)


def test_burst_worker_delivers_what_is_queued_and_exits(app):
    with Receiver(secret="whsec_e2e", auth=("Authorization", "Bearer tok_e2e")) as rx:
        make_webhook(app, rx.url + "/hooks")
        make_webhook(app, rx.url + "/other")
        event_id = emit(app)
        result = app.test_cli_runner().invoke(args=["webhooks", "worker", "--burst"])
        assert result.exit_code == 0, result.output
        assert sorted(r.path for r in rx.received) == ["/hooks", "/other"]
        assert all(r.signature_ok and r.auth_ok for r in rx.received)
    assert {d["status"] for d in deliveries(app, event_id)} == {"succeeded"}


def test_dispatch_enqueues_pending_deliveries(app):
    make_webhook(app, "http://127.0.0.1:9/hooks")
    with app.app_context():
        app.webhooks.emit("visibility_changed", brand={"id": "3f2b8c1e-5d4a-4e7b-9c6d-1a2b3c4d5e6f"}, data={})
        app.db.session.info.clear()  # as if Redis had been down at commit
        app.db.session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["webhooks", "dispatch"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        "enqueued 1 deliveries (pending 1, lost jobs 0, stuck 0, overdue retries 0)")
    assert runner.invoke(args=["webhooks", "dispatch"]).output.startswith("enqueued 0 deliveries")


def test_dispatch_says_why_when_redis_is_down(make_app):
    app = make_app(TRAKKR_WEBHOOKS_REDIS_URL="redis://127.0.0.1:1/0", **CONFIG)
    make_webhook(app, "http://127.0.0.1:9/hooks")
    emit(app)
    result = app.test_cli_runner().invoke(args=["webhooks", "dispatch"])
    assert result.exit_code == 1
    assert "could not dispatch: ConnectionError" in result.output


def test_cli_help_names_the_commands(app):
    result = app.test_cli_runner().invoke(args=["webhooks", "--help"])
    assert "worker" in result.output and "dispatch" in result.output
    assert "--burst" in app.test_cli_runner().invoke(args=["webhooks", "worker", "--help"]).output
