"""``GET <prefix>/openapi.json``: the OpenAPI 3 document of this app's API.

Served without asking the access policy (see ``PUBLIC_ENDPOINTS`` in the package):
the document describes the API's shape and limits and holds no data. It is built once
per set of event types, providers and auth methods (hosts may register more after start)
and cached on the state.

The rule takes every method so that ``PATCH``/``DELETE`` of this path are answered 405
here rather than routed to ``/<webhook_id>`` (which would call it a missing webhook).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import MethodNotAllowed

from .. import auth, openapi, providers
from ..state import get_state
from .common import BLUEPRINT_NAME, query_params

#: What this path answers; everything else is 405 with this ``Allow``.
ALLOWED_METHODS = ("GET", "HEAD", "OPTIONS")
_ALL_METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]


def register(bp: Blueprint) -> None:
    """Add the document's route to ``bp``."""
    bp.add_url_rule(
        "/openapi.json",
        openapi.DOCUMENT_ENDPOINT,
        serve_document,
        methods=_ALL_METHODS,
        provide_automatic_options=False,
    )


def document() -> dict[str, Any]:
    """The current app's OpenAPI document (cached per set of event types, providers and auth methods)."""
    state = get_state()
    key = (*state.event_types, "|", *providers.names(), "|", *auth.names())
    cached = state.openapi_cache
    if cached is None or cached[0] != key:
        routes = [
            (rule.endpoint.split(".", 1)[1], rule.rule, rule.methods or ())
            for rule in current_app.url_map.iter_rules()
            if rule.endpoint.startswith(BLUEPRINT_NAME + ".")
        ]
        cached = (key, openapi.build_document(state.settings, tuple(state.event_types), routes))
        state.openapi_cache = cached
    return cached[1]


def serve_document() -> Response:
    """``GET /webhooks/openapi.json``; ``OPTIONS`` says what is allowed; any other method is 405."""
    if request.method == "OPTIONS":
        response = current_app.response_class(status=200)
        response.headers["Allow"] = ", ".join(ALLOWED_METHODS)
        return response
    if request.method not in ALLOWED_METHODS:
        raise MethodNotAllowed(valid_methods=list(ALLOWED_METHODS))
    query_params()
    return jsonify(document())
