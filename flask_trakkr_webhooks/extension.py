"""The ``TrakkrWebhooks`` Flask extension: ``init_app``, state, policy and event types."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from flask import Flask, current_app

from . import config as _config
from .events import DEFAULT_EVENT_TYPES
from .models import Models, models_for

if TYPE_CHECKING:  # pragma: no cover
    from flask_sqlalchemy import SQLAlchemy

EXTENSION_KEY = "trakkr_webhooks"

AccessPolicy = Callable[[str], bool]


@dataclass
class WebhooksState:
    """Everything one app's webhooks need, kept in ``app.extensions["trakkr_webhooks"]``."""

    extension: "TrakkrWebhooks"
    db: Any
    models: Models
    settings: _config.Settings
    #: Lazily created resources (Redis connection, queue, HTTP session).
    cache: dict = field(default_factory=dict)

    @property
    def event_types(self) -> dict[str, str]:
        """Known event types (name -> description) of this extension."""
        return self.extension.event_types

    @property
    def access_policy(self) -> AccessPolicy | None:
        """The registered access policy, or ``None``."""
        return self.extension._access_policy


def get_state(app: Flask | None = None) -> WebhooksState:
    """Return the webhooks state of ``app`` (default: the current app)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        return app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            "flask-trakkr-webhooks is not initialised on this app: call webhooks.init_app(app, db)"
        ) from None


class TrakkrWebhooks:
    """A webhook system for a Flask app.

    ``TrakkrWebhooks(app, db)`` or ``webhooks = TrakkrWebhooks()`` then
    ``webhooks.init_app(app, db)`` in an application factory. One extension
    object may serve several apps; each app's state is in
    ``app.extensions["trakkr_webhooks"]``.
    """

    def __init__(self, app: Flask | None = None, db: "SQLAlchemy | None" = None) -> None:
        self._db = db
        self._access_policy: AccessPolicy | None = None
        #: Functions called with a webhook row after the sender disabled it (see :meth:`on_disabled`).
        self.disabled_handlers: list[Callable[[Any], None]] = []
        self.event_types: dict[str, str] = dict(DEFAULT_EVENT_TYPES)
        if app is not None:
            self.init_app(app, db)

    def init_app(self, app: Flask, db: "SQLAlchemy | None" = None) -> None:
        """Register models, the ``/webhooks`` blueprint, the CLI and config defaults on ``app``.

        Raises ``RuntimeError`` when ``app`` already has the extension, and
        ``ValueError`` when a ``TRAKKR_WEBHOOKS_*`` setting is invalid.
        """
        db = db if db is not None else self._db
        if db is None:
            raise TypeError("init_app needs the host app's Flask-SQLAlchemy db: webhooks.init_app(app, db)")
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("flask-trakkr-webhooks is already initialised on this app")
        _config.apply_defaults(app.config)
        settings = _config.load_settings(app.config)
        # Fail at start, not at the first delivery: a missing key or a bad CIDR is a setup error.
        from .crypto import check_key
        from .ssrf import parse_cidrs

        check_key(settings, app)
        parse_cidrs(settings.allowed_cidrs)
        state = WebhooksState(extension=self, db=db, models=models_for(db), settings=settings)
        app.extensions[EXTENSION_KEY] = state

        from .api import create_blueprint, register_app_error_handlers
        from .cli import webhooks_cli

        app.register_blueprint(create_blueprint(), url_prefix=settings.url_prefix)
        register_app_error_handlers(app, settings.url_prefix)
        app.cli.add_command(webhooks_cli)

    # -- host hooks ---------------------------------------------------------------

    def access_policy(self, func: AccessPolicy) -> AccessPolicy:
        """Decorator: register ``func(brand_id) -> bool``, asked on every API request.

        It runs inside the request, so it can read ``flask.request`` (an API key,
        a session). Return ``False`` to refuse; raise ``werkzeug.exceptions.Unauthorized``
        to answer 401 when the caller is not authenticated at all.
        """
        self._access_policy = func
        return func

    def on_disabled(self, func: Callable[[Any], None]) -> Callable[[Any], None]:
        """Decorator: call ``func(webhook)`` after the sender disabled a webhook (410 Gone or a failing
        streak; see :mod:`.health`), e.g. to tell its owner.

        It runs where the delivery was recorded (usually the worker), in the app context, after
        the commit; ``webhook.disabled_reason`` says why. Its exceptions are logged and swallowed.
        The blinker signal ``flask_trakkr_webhooks.health.webhook_disabled`` is sent as well.
        """
        self.disabled_handlers.append(func)
        return func

    def register_event_type(self, name: str, description: str) -> None:
        """Add an event type (beyond the five built-in ones) that ``emit`` and the API accept."""
        from .events import validate_event_type_name

        validate_event_type_name(name)
        self.event_types[name] = str(description)

    # -- emitting -------------------------------------------------------------------

    def emit(
        self,
        event_type: str,
        *,
        brand: Mapping[str, Any],
        data: Mapping[str, Any],
        workflow: Mapping[str, Any] | None = None,
        summary: str | None = None,
    ) -> str:
        """Record an event for every subscribed active webhook of ``brand``; return its ``evt_`` id.

        Joins the current ``db.session`` transaction: the rows are written with it and
        the jobs are enqueued only after it commits (a rollback sends nothing).
        """
        from .outbox import emit as _emit

        return _emit(get_state(), event_type, brand=brand, data=data, workflow=workflow, summary=summary)
