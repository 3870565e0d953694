"""Configuration (``flask_trakkr_webhooks/config.py``): every default reaches the app's config, and
an invalid value fails at start naming its key.
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_trakkr_webhooks import TrakkrWebhooks, crypto
from flask_trakkr_webhooks.config import DEFAULTS, PREFIX, load_settings
from flask_trakkr_webhooks.errors import ConfigError


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


#: A value of the wrong type for every key (issue 19: ENCRYPTION_KEY = 12345 failed with
#: "'int' object is not iterable"; strings for booleans were taken as True).
WRONG_TYPES = {
    "REDIS_URL": 6379,
    "QUEUE": ["webhooks"],
    "URL_PREFIX": 5,
    "REQUIRE_HTTPS": "false",
    "ALLOW_PRIVATE_NETWORKS": "no",
    "ALLOWED_CIDRS": 10,
    "RETRY_DELAYS": {"a": 1},
    "TIMEOUT": "10",
    "MAX_RETRY_AFTER": None,
    "OPEN_API": "False",
    "ENCRYPTION_KEY": 12345,
    "MAX_REQUEST_BYTES": "big",
    "MAX_PAYLOAD_BYTES": [1],
    "MAX_PAYLOAD_DEPTH": "32",
    "MAX_TEMPLATE_BYTES": 1.5,
    "MAX_HEADERS": True,
    "MAX_HEADER_BYTES": None,
    "MAX_EVENTS_PER_WEBHOOK": "50",
    "RESPONSE_BODY_LIMIT": float("nan"),
    "PAGE_SIZE": float("inf"),
    "MAX_PAGE_SIZE": "100",
    "CONCURRENCY": 32.5,
    "PER_HOST_CONCURRENCY": [8],
    "BATCH_SIZE": "50",
    "SWEEP_INTERVAL": "30",
    "STUCK_AFTER": {},
    "SECRET_GRACE_PERIOD": "1d",
    "DISABLE_AFTER_FAILURES": "15",
    "DISABLE_AFTER_HOURS": b"24",
    "RATE_LIMITS": {"slack": "fast"},
    "MAX_RATE_LIMIT_WAIT": -1,
    "SHARED_HOSTS": [""],
    "PACING_HOLD": "30",
    "METRICS": "yes",
    "METRICS_PORT": 70000,
    "METRICS_ADDRESS": "",
    "LOG_FORMAT": "xml",
    "STATUS_MAX_BACKLOG_AGE": "300",
    "STATUS_MIN_WORKERS": 1.5,
    "STATUS_MIN_SUCCESS_RATE": 1.5,
    "STATUS_MAX_DISABLED_ENDPOINTS": -1,
    "TRACEPARENT_HEADER": "on",
    "PORTAL": "true",
    "PORTAL_PREFIX": 5,
    "RETENTION": [30],
    "BODY_RETENTION": {},
    "PRUNE_INTERVAL": "3600",
    "PRUNE_BATCH_SIZE": 1.5,
    "PRUNE_PAUSE": "2",
}


def test_every_key_has_a_wrong_type_case() -> None:
    assert set(WRONG_TYPES) == set(DEFAULTS)


@pytest.mark.parametrize("key", sorted(WRONG_TYPES))
@pytest.mark.parametrize("testing", [True, False])
def test_a_wrong_type_for_any_key_fails_at_start_naming_the_key(key, testing, tmp_path) -> None:
    app = Flask(__name__)
    app.config.update(TESTING=testing, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/x.db")
    app.config[PREFIX + key] = WRONG_TYPES[key]
    db = SQLAlchemy(app)
    with pytest.raises(ConfigError, match=PREFIX + key):
        TrakkrWebhooks(app, db)


@pytest.mark.parametrize("value", [12345, [12345], 1.5, {"k": "v"}])
def test_parse_keys_names_the_setting_for_a_wrong_type(value) -> None:
    with pytest.raises(ConfigError, match="TRAKKR_WEBHOOKS_ENCRYPTION_KEY") as info:
        crypto.parse_keys(value)
    assert "not iterable" not in str(info.value)


@pytest.mark.parametrize("value", [0, 101, 5000])
def test_payload_depth_is_bounded(value, tmp_path) -> None:
    app = Flask(__name__)
    app.config.update(TESTING=True, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/x.db")
    app.config[PREFIX + "MAX_PAYLOAD_DEPTH"] = value
    with pytest.raises(ConfigError, match=PREFIX + "MAX_PAYLOAD_DEPTH"):
        TrakkrWebhooks(app, SQLAlchemy(app))


def test_a_wrong_encryption_key_type_never_echoes_the_value(tmp_path) -> None:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/x.db")
    app.config[PREFIX + "ENCRYPTION_KEY"] = 98765432123
    with pytest.raises(ConfigError) as info:
        TrakkrWebhooks(app, SQLAlchemy(app))
    assert "98765432123" not in str(info.value)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"RETENTION": "soon"}, "TRAKKR_WEBHOOKS_RETENTION: not a duration: 'soon'"),
        ({"RETENTION": 30}, "TRAKKR_WEBHOOKS_RETENTION must be at least 1h (or None: kept for ever), got 30"),
        ({"BODY_RETENTION": "60d"}, "TRAKKR_WEBHOOKS_BODY_RETENTION ('60d') must not exceed TRAKKR_WEBHOOKS_RETENTION"),
        ({"PRUNE_INTERVAL": -1}, "TRAKKR_WEBHOOKS_PRUNE_INTERVAL must be a number >= 0, got -1"),
        ({"PRUNE_BATCH_SIZE": 0}, "TRAKKR_WEBHOOKS_PRUNE_BATCH_SIZE must be a number >= 1, got 0"),
        ({"PRUNE_PAUSE": -1}, "TRAKKR_WEBHOOKS_PRUNE_PAUSE must be a number >= 0, got -1"),
        ({"PRUNE_PAUSE": "2x"}, "TRAKKR_WEBHOOKS_PRUNE_PAUSE must be a number >= 0, got '2x'"),
    ],
)
def test_config_retention_refused(config: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({PREFIX + k: v for k, v in config.items()})
    assert str(caught.value).startswith(message)


def test_config_retention_durations() -> None:
    settings = load_settings({PREFIX + "RETENTION": "90d", PREFIX + "BODY_RETENTION": None})
    assert (settings.retention, settings.body_retention) == (90 * 86400, 90 * 86400)  # bodies go with rows
    settings = load_settings({PREFIX + "RETENTION": None, PREFIX + "BODY_RETENTION": "2d"})
    assert (settings.retention, settings.body_retention) == (None, 2 * 86400)
    assert load_settings({}).retention == 30 * 86400 and load_settings({}).body_retention == 7 * 86400
