"""The web portal: webhooks, delivery logs, replay and health, inside the host app.

Off by default; ``TRAKKR_WEBHOOKS_PORTAL = True`` mounts this blueprint at
``TRAKKR_WEBHOOKS_PORTAL_PREFIX`` (default ``/webhooks/portal``). Pages are server-rendered
Jinja templates under ``trakkr_webhooks/portal/`` (a host overrides any of them, or the
``base.html`` layout, by putting a template of the same name in its own templates folder),
with one small vendored script and a strict Content-Security-Policy. Access is the API's:
the host's access policy decides every request (see :mod:`.views`); every POST needs the
session's CSRF token (:mod:`.security`).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, request

from ..errors import APIError
from . import security, views

__all__ = ["BLUEPRINT_NAME", "create_blueprint", "mount"]

#: The portal blueprint's name (its endpoints are ``trakkr_webhooks_portal.<page>``).
BLUEPRINT_NAME = "trakkr_webhooks_portal"


def create_blueprint() -> Blueprint:
    """A new portal blueprint (one per app)."""
    bp = Blueprint(
        BLUEPRINT_NAME,
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/static",
    )
    bp.before_request(security.check_csrf)
    bp.after_request(security.add_headers)

    @bp.context_processor
    def _context() -> dict[str, Any]:
        return {"csrf_token": security.csrf_token, "csrf_field": security.FORM_FIELD}

    bp.register_error_handler(APIError, views.error_page)
    bp.register_error_handler(security.CSRFError, views.error_page)
    bp.register_error_handler(404, views.error_page)
    bp.register_error_handler(401, views.error_page)
    bp.register_error_handler(403, views.error_page)
    bp.register_error_handler(405, views.error_page)
    views.register(bp)
    return bp


def mount(app: Flask, prefix: str) -> None:
    """Register the portal on ``app`` at ``prefix``; every response under it (a routing 404 too,
    which no blueprint sees) carries the portal's security headers."""
    app.register_blueprint(create_blueprint(), url_prefix=prefix)
    prefix = prefix.rstrip("/")

    def headers(response: Response) -> Response:
        if request.path == prefix or request.path.startswith(prefix + "/"):
            security.add_headers(response)
        return response

    app.after_request(headers)
