"""The e2e host app with a host-registered provider, as a host would register one at import time.

``pager`` claims URLs whose path starts with ``/pager/`` and sends ``{"text": <summary>,
"severity": "info", "brand": <brand name>}``: ``flask --app e2e.provider_hostapp:create_app
webhooks worker`` then formats deliveries of such webhooks with it.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from e2e.hostapp import create_app as create_base_app
from flask_trakkr_webhooks import providers


def pager_body(payload: dict[str, Any]) -> dict[str, Any]:
    """The pager platform's body: pure, the standard payload in."""
    return {"text": payload["summary"], "severity": "info", "brand": payload["brand"]["name"]}


def is_pager_url(host: str, path: str) -> bool:
    """Pager endpoints: any host, a path under ``/pager/``."""
    return path.startswith("/pager/")


def register_pager() -> None:
    """Register the provider (idempotent: registering again replaces it)."""
    providers.register("pager", pager_body, matches=is_pager_url, label="Pager: one line of text")


def create_app() -> Flask:
    """The e2e host app, with the ``pager`` provider registered."""
    register_pager()
    return create_base_app()
