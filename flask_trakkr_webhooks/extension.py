"""The ``TrakkrWebhooks`` Flask extension: the top of the package.

``init_app`` wires everything below it (config, models, the API blueprint, the CLI) and
keeps the app's state in ``app.extensions["trakkr_webhooks"]`` (see :mod:`.state`).
Nothing in the package imports this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask

from . import config, crypto, outbox, ssrf
from .api import create_blueprint, register_app_error_handlers
from .cli import webhooks_cli
from .events import EventTypes
from .models import models_for
from .portal import mount as mount_portal
from .state import EXTENSION_KEY, AccessPolicy, BrandLister, DisabledHandler, Hooks, WebhooksState, get_state

if TYPE_CHECKING:  # pragma: no cover
    from flask_sqlalchemy import SQLAlchemy


class TrakkrWebhooks:
    """A webhook system for a Flask app.

    ``TrakkrWebhooks(app, db)`` or ``webhooks = TrakkrWebhooks()`` then
    ``webhooks.init_app(app, db)`` in an application factory. One extension
    object may serve several apps; each app's state is in
    ``app.extensions["trakkr_webhooks"]``.
    """

    def __init__(self, app: Flask | None = None, db: SQLAlchemy | None = None) -> None:
        self._db = db
        #: The access policy, on_disabled handlers and event types, shared by every app served.
        self.hooks = Hooks()
        if app is not None:
            self.init_app(app, db)

    @property
    def event_types(self) -> EventTypes:
        """Event types ``emit`` and the API accept (name -> description)."""
        return self.hooks.event_types

    @property
    def disabled_handlers(self) -> list[DisabledHandler]:
        """Functions called with a webhook row after the sender disabled it (see :meth:`on_disabled`)."""
        return self.hooks.disabled_handlers

    def init_app(self, app: Flask, db: SQLAlchemy | None = None) -> None:
        """Register models, the ``/webhooks`` blueprint, the CLI and config defaults on ``app``.

        Raises ``RuntimeError`` when ``app`` already has the extension, and
        :class:`~.errors.ConfigError` (a ``ValueError``) when a ``TRAKKR_WEBHOOKS_*`` setting is invalid.
        """
        db = db if db is not None else self._db
        if db is None:
            raise TypeError("init_app needs the host app's Flask-SQLAlchemy db: webhooks.init_app(app, db)")
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("flask-trakkr-webhooks is already initialised on this app")
        config.apply_defaults(app.config)
        settings = config.load_settings(app.config)
        # Fail at start, not at the first delivery: a missing key or a bad CIDR is a setup error.
        crypto.check_key(settings, app)
        ssrf.parse_cidrs(settings.allowed_cidrs)
        app.extensions[EXTENSION_KEY] = WebhooksState(db=db, models=models_for(db), settings=settings, hooks=self.hooks)
        app.register_blueprint(create_blueprint(), url_prefix=settings.url_prefix)
        register_app_error_handlers(app, settings.url_prefix, settings.portal_prefix if settings.portal else None)
        if settings.portal:
            mount_portal(app, settings.portal_prefix)
        app.cli.add_command(webhooks_cli)

    # -- host hooks ---------------------------------------------------------------

    def access_policy(self, func: AccessPolicy) -> AccessPolicy:
        """Decorator: register ``func(brand_id) -> bool``, asked on every API request.

        It runs inside the request, so it can read ``flask.request`` (an API key,
        a session). Return ``False`` to refuse; raise ``werkzeug.exceptions.Unauthorized``
        to answer 401 when the caller is not authenticated at all.
        """
        self.hooks.access_policy = func
        return func

    def portal_brands(self, func: BrandLister) -> BrandLister:
        """Decorator: register ``func() -> [(brand_id, name), ...]``, the brands the current user
        may see, listed by the portal's brand picker (the access policy still decides each request)."""
        self.hooks.portal_brands = func
        return func

    def on_disabled(self, func: DisabledHandler) -> DisabledHandler:
        """Decorator: call ``func(webhook)`` after the sender disabled a webhook (410 Gone or a failing
        streak; see :mod:`.health`), e.g. to tell its owner.

        It runs where the delivery was recorded (usually the worker), in the app context, after
        the commit; ``webhook.disabled_reason`` says why. Its exceptions are logged and swallowed.
        The blinker signal ``flask_trakkr_webhooks.health.webhook_disabled`` is sent as well.
        """
        self.hooks.disabled_handlers.append(func)
        return func

    def register_event_type(self, name: str, description: str, **wording: Any) -> None:
        """Add an event type (beyond the five built-in ones) that ``emit`` and the API accept.

        ``wording`` is passed to :meth:`.events.EventTypes.register` (a summary function, sample
        data, chat wording); ``ValueError`` for a malformed name.
        """
        self.hooks.event_types.register(name, description, **wording)

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
        return outbox.emit(get_state(), event_type, brand=brand, data=data, workflow=workflow, summary=summary)


__all__ = ["TrakkrWebhooks", "get_state"]
