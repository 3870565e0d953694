"""The extension pattern (``flask_trakkr_webhooks/extension.py``): init_app, app.extensions, the
blueprint and CLI, the startup checks. Config defaults and validation are in ``test_config.py``.
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_trakkr_webhooks import TrakkrWebhooks, get_state
from flask_trakkr_webhooks.crypto import generate_key


def test_init_app_registers_state_defaults_blueprint_and_cli(app: Flask) -> None:
    state = app.extensions["trakkr_webhooks"]
    assert state is get_state(app)
    assert app.config["TRAKKR_WEBHOOKS_URL_PREFIX"] == "/webhooks"
    assert app.config["TRAKKR_WEBHOOKS_RETRY_DELAYS"] == [1, 2, 4]
    assert app.config["TRAKKR_WEBHOOKS_TIMEOUT"] == 10
    assert app.config["TRAKKR_WEBHOOKS_REQUIRE_HTTPS"] is True
    assert app.config["TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS"] is False
    assert app.config["TRAKKR_WEBHOOKS_OPEN_API"] is False
    assert "trakkr_webhooks" in app.blueprints
    assert "webhooks" in app.cli.commands
    assert not hasattr(app.webhooks, "app")
    assert set(state.models.__dict__) == {"Webhook", "Event", "Delivery", "Attempt"}


def test_second_init_app_is_an_error(app: Flask) -> None:
    with pytest.raises(RuntimeError, match="already initialised"):
        app.webhooks.init_app(app, app.db)


def test_init_app_needs_a_db() -> None:
    with pytest.raises(TypeError, match="db"):
        TrakkrWebhooks().init_app(Flask(__name__))


def test_constructor_form_and_one_extension_for_two_apps(tmp_path) -> None:
    db = SQLAlchemy()
    apps = []
    for n in range(2):
        app = Flask(f"a{n}")
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path}/{n}.db"
        app.config["TRAKKR_WEBHOOKS_ENCRYPTION_KEY"] = generate_key()
        db.init_app(app)
        apps.append(app)
    ext = TrakkrWebhooks(apps[0], db)
    ext.init_app(apps[1])
    assert get_state(apps[0]).models is get_state(apps[1]).models
    assert get_state(apps[0]).hooks is get_state(apps[1]).hooks is ext.hooks


def test_custom_url_prefix(make_app) -> None:
    app = make_app(TRAKKR_WEBHOOKS_URL_PREFIX="/api/v1/hooks")
    rules = {r.rule for r in app.url_map.iter_rules() if r.endpoint.startswith("trakkr_webhooks.")}
    assert rules and all(r.startswith("/api/v1/hooks") for r in rules)


def test_register_event_type(app: Flask) -> None:
    app.webhooks.register_event_type("mention.spiked", "Mentions spiked")
    assert get_state(app).event_types["mention.spiked"] == "Mentions spiked"
    for bad in ("Bad Name", "mention.spiked\n", "", "9lives"):
        with pytest.raises(ValueError, match="invalid event type name"):
            app.webhooks.register_event_type(bad, "x")


def test_production_app_without_encryption_key_refuses_to_start(tmp_path) -> None:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path}/x.db"
    db = SQLAlchemy(app)
    with pytest.raises(RuntimeError, match="TRAKKR_WEBHOOKS_ENCRYPTION_KEY"):
        TrakkrWebhooks(app, db)
    assert "trakkr_webhooks" not in app.extensions
