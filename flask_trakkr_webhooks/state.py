"""Per-app state and per-process resources: the bottom of the package's import graph.

``init_app`` stores one :class:`WebhooksState` in ``app.extensions["trakkr_webhooks"]``
(as Flask-SQLAlchemy keeps its state per app); every layer above finds it with
:func:`get_state`. This module imports nothing of the package above it (the models and
the engine only for type checking), so any module may import it.

Resources that must not cross a ``fork`` (Redis sockets, the HTTP keep-alive pool, the
delivery engine's threads) live in :class:`ProcessResources`, made anew in each process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
from flask import Flask, current_app
from rq import Queue

from .config import Settings
from .errors import NotInitialisedError
from .events import EventTypes

if TYPE_CHECKING:  # pragma: no cover
    from flask_sqlalchemy import SQLAlchemy

    from .engine import Engine
    from .models import Models
    from .ssrf import PinnedClient

#: The key of the state in ``app.extensions``.
EXTENSION_KEY = "trakkr_webhooks"

#: ``policy(brand_id) -> bool``: may the current request manage webhooks of that brand?
AccessPolicy = Callable[[str], bool]
#: Called with a webhook row after the sender disabled it.
DisabledHandler = Callable[[Any], None]
#: ``lister() -> [(brand_id, name), ...]``: the brands the current user may see (the portal's picker).
BrandLister = Callable[[], Iterable[tuple[str, str]]]


@dataclass
class Hooks:
    """What a host registers on its ``TrakkrWebhooks`` object, shared by every app it serves."""

    event_types: EventTypes = field(default_factory=EventTypes.builtin)
    access_policy: AccessPolicy | None = None
    disabled_handlers: list[DisabledHandler] = field(default_factory=list)
    portal_brands: BrandLister | None = None


@dataclass
class ProcessResources:
    """Connections and threads of one app in one process (never inherited across a fork)."""

    pid: int
    redis: redis.Redis | None = None
    queue: Queue | None = None
    http: PinnedClient | None = None
    engine: Engine | None = None
    #: After a failed enqueue, commits skip Redis until this ``time.monotonic()`` value.
    redis_down_until: float = 0.0


@dataclass
class WebhooksState:
    """Everything one app's webhooks need, kept in ``app.extensions["trakkr_webhooks"]``."""

    db: SQLAlchemy
    models: Models
    settings: Settings
    hooks: Hooks
    #: The OpenAPI document and the event types it was built for (see ``api.openapi``).
    openapi_cache: tuple[tuple[str, ...], dict[str, Any]] | None = None
    _resources: ProcessResources | None = field(default=None, repr=False)

    @property
    def event_types(self) -> EventTypes:
        """Known event types (name -> description), built-in and host-registered."""
        return self.hooks.event_types

    @property
    def access_policy(self) -> AccessPolicy | None:
        """The host's access policy, or ``None``."""
        return self.hooks.access_policy

    @property
    def local(self) -> ProcessResources:
        """This process's resources (new after a fork: sockets and threads are not inherited)."""
        pid = os.getpid()
        resources = self._resources
        if resources is None or resources.pid != pid:
            resources = self._resources = ProcessResources(pid=pid)
        return resources

    def redis(self) -> redis.Redis:
        """This process's Redis client (short timeouts: ``emit`` must never hang on Redis)."""
        local = self.local
        if local.redis is None:
            local.redis = redis.Redis.from_url(
                self.settings.redis_url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=30
            )
        return local.redis

    def queue(self) -> Queue:
        """The RQ queue of this app (``TRAKKR_WEBHOOKS_QUEUE``) on :meth:`redis`."""
        local = self.local
        if local.queue is None:
            local.queue = Queue(self.settings.queue, connection=self.redis())
        return local.queue

    @property
    def jobs_key(self) -> str:
        """The Redis hash delivery id -> job id that de-duplicates enqueueing."""
        return f"trakkr_webhooks:{self.settings.queue}:jobs"

    @property
    def sweep_lock_key(self) -> str:
        """The Redis key that lets one worker at a time sweep."""
        return f"trakkr_webhooks:{self.settings.queue}:sweep-lock"

    @property
    def sweep_cursor_key(self) -> str:
        """The Redis key where a periodic sweep that hit its limit leaves its cursor for the next one."""
        return f"trakkr_webhooks:{self.settings.queue}:sweep-cursor"


def get_state(app: Flask | None = None) -> WebhooksState:
    """Return the webhooks state of ``app`` (default: the current app)."""
    target: Flask = app if app is not None else current_app._get_current_object()  # type: ignore[attr-defined]  # werkzeug LocalProxy
    state = target.extensions.get(EXTENSION_KEY)
    if not isinstance(state, WebhooksState):
        raise NotInitialisedError(
            "flask-trakkr-webhooks is not initialised on this app: call webhooks.init_app(app, db)"
        )
    return state
