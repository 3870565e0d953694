"""Configuration (``flask_trakkr_webhooks/config.py``): every default reaches the app's config, and
an invalid value fails at start naming its key.
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_trakkr_webhooks import TrakkrWebhooks
from flask_trakkr_webhooks.config import DEFAULTS, PREFIX


def test_every_default_is_in_the_config(app: Flask) -> None:
    for key in DEFAULTS:
        assert PREFIX + key in app.config


@pytest.mark.parametrize(
    "key,value",
    [
        ("RETRY_DELAYS", "1,2,4"),
        ("RETRY_DELAYS", [1, -2]),
        ("TIMEOUT", 0),
        ("TIMEOUT", "10"),
        ("URL_PREFIX", "webhooks"),
        ("MAX_REQUEST_BYTES", 10),
    ],
)
def test_invalid_config_fails_at_start_naming_the_key(key, value, tmp_path) -> None:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path}/x.db"
    app.config[PREFIX + key] = value
    db = SQLAlchemy(app)
    with pytest.raises(ValueError, match=PREFIX + key):
        TrakkrWebhooks(app, db)


def test_bad_allowed_cidrs_fail_at_start(tmp_path) -> None:
    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/x.db",
        TRAKKR_WEBHOOKS_ALLOWED_CIDRS=["10.0.0.0/33"],
    )
    db = SQLAlchemy(app)
    with pytest.raises(ValueError, match="TRAKKR_WEBHOOKS_ALLOWED_CIDRS"):
        TrakkrWebhooks(app, db)
