"""The ``/webhooks`` REST API: the blueprint, request guards and the access policy.

Routes live in one module per resource (``webhooks``, ``deliveries``, ``preview``,
``openapi``); what they share is in :mod:`.common`. This module builds the blueprint and
guards every request (body size, JSON, the access policy's secure default).
"""

from __future__ import annotations

import re

from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from ..errors import APIError
from ..state import get_state
from . import deliveries, openapi, preview, webhooks
from .common import BLUEPRINT_NAME, error_response, missing_policy_error, register_error_handlers

__all__ = ["BLUEPRINT_NAME", "PUBLIC_ENDPOINTS", "create_blueprint", "register_app_error_handlers"]

#: Endpoints answered without the access policy's secure default (the OpenAPI document holds no data).
PUBLIC_ENDPOINTS = frozenset({f"{BLUEPRINT_NAME}.openapi"})


def create_blueprint() -> Blueprint:
    """A new blueprint with every route of the API (one per app)."""
    bp = Blueprint(BLUEPRINT_NAME, __name__)
    register_error_handlers(bp)
    bp.before_request(_guard_request)
    webhooks.register(bp)
    deliveries.register(bp)
    preview.register(bp)
    openapi.register(bp)
    return bp


def register_app_error_handlers(app: Flask, url_prefix: str, exclude: str | None = None) -> None:
    """Answer 404/405 under the prefix as JSON; leave the host's other pages alone.

    Routing errors happen before a blueprint is chosen, so blueprint handlers never
    see them; an app-level handler that only acts under our prefix fills the gap.
    Werkzeug's routing redirects (a path with ``//`` is redirected, 308, to the path with
    single slashes) never reach an error handler at all: an app-level ``before_request``
    answers them, under the prefix, with a JSON 404 instead of an HTML redirect.
    Paths under ``exclude`` (the portal's prefix, when it is under ours) are left alone.
    """
    prefix = url_prefix.rstrip("/")
    skip = exclude.rstrip("/") if exclude else None

    def ours() -> bool:
        # "//webhooks//x" is under the prefix too: werkzeug would merge its slashes.
        path = re.sub("/{2,}", "/", request.path)
        if skip and (path == skip or path.startswith(skip + "/")):
            return False
        return path == prefix or path.startswith(prefix + "/") or not prefix

    def handler(error: HTTPException) -> HTTPException | Response:
        if not ours():
            return error
        response = error_response(APIError(error.code or 500, error.description or error.name))
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    def no_redirect() -> Response | None:
        if not isinstance(request.routing_exception, RequestRedirect) or not ours():
            return None
        return error_response(
            APIError(404, "Not found: the path has an empty segment ('//'); send it with single slashes.")
        )

    app.before_request(no_redirect)
    previous_404 = app.error_handler_spec.get(None, {}).get(404, {}).get(NotFound)
    previous_405 = app.error_handler_spec.get(None, {}).get(405, {}).get(MethodNotAllowed)
    if previous_404 is None:
        app.register_error_handler(NotFound, handler)
    if previous_405 is None:
        app.register_error_handler(MethodNotAllowed, handler)


def _guard_request() -> None:
    """Refuse oversized bodies (413) and non-JSON bodies (415); enforce the secure default (403)."""
    state = get_state()
    limit = state.settings.max_request_bytes
    length = request.content_length
    if length is not None and length > limit:
        raise APIError(413, f"Request body is larger than the limit of {limit} bytes.")
    if request.method in ("POST", "PATCH", "PUT"):
        # Read at most limit+1 bytes: a chunked body without Content-Length cannot exceed it.
        raw = request.stream.read(limit + 1) if length is None else request.get_data(cache=True)
        if length is None:
            if len(raw) > limit:
                raise APIError(413, f"Request body is larger than the limit of {limit} bytes.")
            request._cached_data = raw  # later get_data() sees it
        if raw and not request.is_json:
            raise APIError(
                415,
                "Request body must be JSON: send Content-Type: application/json.",
                {"Content-Type": [f"expected application/json, got {request.mimetype or 'none'}"]},
            )
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    refused = missing_policy_error()
    if refused is not None:
        raise refused
