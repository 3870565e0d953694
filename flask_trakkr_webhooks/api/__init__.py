"""The ``/webhooks`` REST API: the blueprint, request guards and the access policy.

Routes live in one module per resource (``webhooks``, ``deliveries``); this module
holds what they share: JSON parsing with the contract's errors, and the policy.
"""
from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Flask, current_app, has_request_context, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from ..errors import APIError, error_response, register_error_handlers
from ..extension import get_state

BLUEPRINT_NAME = "trakkr_webhooks"
#: Endpoints answered without the access policy's secure default (the OpenAPI document holds no data).
PUBLIC_ENDPOINTS = frozenset({f"{BLUEPRINT_NAME}.openapi"})


def create_blueprint() -> Blueprint:
    """A new blueprint with every route of the API (one per app)."""
    bp = Blueprint(BLUEPRINT_NAME, __name__)
    register_error_handlers(bp)
    bp.before_request(_guard_request)

    from . import deliveries, openapi, preview, webhooks

    webhooks.register(bp)
    deliveries.register(bp)
    preview.register(bp)
    openapi.register(bp)
    return bp


def register_app_error_handlers(app: Flask, url_prefix: str) -> None:
    """Answer 404/405 under the prefix as JSON; leave the host's other pages alone.

    Routing errors happen before a blueprint is chosen, so blueprint handlers never
    see them; an app-level handler that only acts under our prefix fills the gap.
    """
    prefix = url_prefix.rstrip("/")

    def ours() -> bool:
        path = request.path
        return path == prefix or path.startswith(prefix + "/") or not prefix

    def handler(error: HTTPException):
        if not ours():
            return error
        response = error_response(APIError(error.code or 500, error.description or error.name))
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

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
            request._cached_data = raw  # type: ignore[attr-defined]  # later get_data() sees it
        if raw and not request.is_json:
            raise APIError(
                415,
                "Request body must be JSON: send Content-Type: application/json.",
                {"Content-Type": [f"expected application/json, got {request.mimetype or 'none'}"]},
            )
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    if state.access_policy is None and not (current_app.testing or state.settings.open_api):
        raise APIError(
            403,
            "No access policy is configured: register one with @webhooks.access_policy "
            "(or set TRAKKR_WEBHOOKS_OPEN_API = True to allow every request).",
        )


def json_body(*, required: bool = True) -> dict[str, Any]:
    """The request body as a JSON object, or an ``APIError`` (400) saying what is wrong with it."""
    raw = request.get_data(cache=True)
    if not raw:
        if required:
            raise APIError(400, "Request body is empty: send a JSON object.")
        return {}
    try:
        value = json.loads(
            raw, parse_constant=_refuse_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys
        )
    except UnicodeDecodeError:
        raise APIError(400, "Request body is not valid UTF-8.") from None
    except ValueError as exc:
        raise APIError(400, f"Malformed JSON: {exc}") from None
    except RecursionError:
        raise APIError(400, "Malformed JSON: nested too deeply.") from None
    if not isinstance(value, dict):
        raise APIError(400, f"Request body must be a JSON object, not {type(value).__name__}.")
    return value


def _refuse_constant(name: str) -> Any:
    # Python's json reads NaN/Infinity, which are not JSON and could not be stored or sent.
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A repeated key means two parsers could read two different requests: refuse it.
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key[:80]!r}")
            seen.add(key)
    return value


def may_manage(brand_id: str) -> bool:
    """Ask the host's access policy whether this request may manage webhooks of ``brand_id``.

    The answer is cached on the request object for the rest of the request, so a list of
    many webhooks asks the policy once per brand. (Not on ``g``: an app context a test
    holds open spans several requests, and the caller may change between them.)
    """
    state = get_state()
    policy = state.access_policy
    if policy is None:
        # _guard_request already refused unless testing or OPEN_API.
        return True
    if not has_request_context():
        return bool(policy(brand_id))
    cache = getattr(request, "_trakkr_webhooks_policy", None)
    if cache is None:
        cache = {}
        request._trakkr_webhooks_policy = cache  # type: ignore[attr-defined]
    if brand_id not in cache:
        cache[brand_id] = bool(policy(brand_id))
    return cache[brand_id]
