"""What the API's route modules share: errors, request parsing, the access policy, lookups.

Every helper a route module needs from another lives here, so route modules import this
one and never each other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, has_request_context, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from .. import events
from ..errors import APIError
from ..rules import WEBHOOK_ID, shown_id
from ..state import WebhooksState, get_state

BLUEPRINT_NAME = "trakkr_webhooks"


# -- errors -------------------------------------------------------------------------------


def error_response(error: APIError) -> Response:
    """A Flask response for ``error``."""
    response = jsonify(error.to_dict())
    response.status_code = error.status
    return response


def register_error_handlers(bp: Blueprint) -> None:
    """Answer every error raised under ``bp`` with the JSON error shape, never HTML."""

    @bp.errorhandler(APIError)
    def _api_error(error: APIError) -> Response:
        return error_response(error)

    @bp.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        message = error.description or error.name
        response = error_response(APIError(status, message))
        valid_methods = getattr(error, "valid_methods", None)  # set by werkzeug's MethodNotAllowed
        if status == 405 and valid_methods:
            response.headers["Allow"] = ", ".join(valid_methods)
        # Keep what the host's exception says about how to authenticate (401).
        original = error.get_response()
        if "WWW-Authenticate" in original.headers:
            response.headers["WWW-Authenticate"] = original.headers["WWW-Authenticate"]
        return response

    @bp.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        # Log the traceback for the operator; the client gets no internals.
        current_app.logger.exception("trakkr_webhooks: unhandled error in the API")
        return error_response(APIError(500, "An internal error occurred; it has been logged."))


def invalid(error: ValidationError) -> APIError:
    """A 400 for a failed validation; the message names the first bad field."""
    fields = error.messages if isinstance(error.messages, dict) else {"body": error.messages}
    api_error = APIError(400, "Invalid request.", fields)
    if api_error.fields:
        name, messages = next(iter(api_error.fields.items()))
        more = len(api_error.fields) - 1
        api_error.message = f"Invalid request: {name} {messages[0]}" + (
            f" (and {more} more field{'s' if more > 1 else ''}; see error.fields)" if more else ""
        )
    return api_error


def query_params(allowed: Iterable[str] = ()) -> dict[str, str]:
    """The query parameters, each at most once; an unknown or repeated one is a 400 naming it."""
    allowed = set(allowed)
    errors: dict[str, list[str]] = {}
    for name in request.args:
        if name not in allowed:
            errors[name] = ["unknown query parameter" + (f"; use {', '.join(sorted(allowed))}" if allowed else "")]
        elif len(request.args.getlist(name)) > 1:
            errors[name] = ["must be given at most once"]
    if errors:
        raise invalid(ValidationError(errors))
    return {name: request.args[name] for name in request.args}


def parse_limit(raw: str | None, default: int, maximum: int) -> int:
    """The ``limit`` query parameter: ``default`` when absent, else an integer from 1 to ``maximum`` (400 if not)."""
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw) or not 1 <= int(raw) <= maximum:
        raise invalid(ValidationError({"limit": [f"must be an integer from 1 to {maximum}"]}))
    return int(raw)


def not_found(webhook_id: str) -> APIError:
    """The 404 answer for a webhook id that does not exist (or that the caller may not see)."""
    return APIError(404, f"No such webhook: {shown_id(webhook_id)}.")


def find_webhook(webhook_id: str, *, include_deleted: bool = False, lock: bool = False) -> Any:
    """The webhook ``webhook_id`` if it exists and the policy allows its brand, else ``None``.

    ``lock`` reads it ``FOR UPDATE`` (PostgreSQL), so two PATCHes of one webhook are
    judged one after the other, each against the values the other left.
    """
    if not WEBHOOK_ID.fullmatch(webhook_id):
        return None
    state = get_state()
    webhook = state.db.session.get(state.models.Webhook, webhook_id, with_for_update=lock or None)
    if webhook is None or (webhook.deleted_at is not None and not include_deleted):
        return None
    if not may_manage(webhook.brand_id):
        return None
    return webhook


def get_or_404(webhook_id: str, *, lock: bool = False) -> Any:
    """The webhook (as :func:`find_webhook`), or a 404 that does not tell whether it exists."""
    webhook = find_webhook(webhook_id, lock=lock)
    if webhook is None:
        raise not_found(webhook_id)
    return webhook


# -- request bodies ---------------------------------------------------------------------


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
    cache: dict[str, bool] | None = getattr(request, "_trakkr_webhooks_policy", None)
    if cache is None:
        cache = {}
        request._trakkr_webhooks_policy = cache  # type: ignore[attr-defined]  # our per-request cache on Request
    if brand_id not in cache:
        cache[brand_id] = bool(policy(brand_id))
    return cache[brand_id]


def no_body_fields(body: dict[str, Any], allowed: tuple[str, ...] = ()) -> None:
    """A 400 naming every field of ``body`` not in ``allowed``."""
    unknown = {k: ["unknown field"] for k in body if k not in allowed}
    if unknown:
        raise invalid(ValidationError(unknown))


def sample_event_type(state: WebhooksState, webhook: Any, requested: Any) -> str:
    """The type of a sample event: ``requested`` (the body's ``event``), or when it is absent/null the
    webhook's first subscribed type still registered (else the first registered type); 400 on ``event``."""
    if requested is None:
        return next((e for e in webhook.events or [] if e in state.event_types), None) or next(iter(state.event_types))
    if not isinstance(requested, str):
        raise invalid(ValidationError({"event": ["must be a string naming an event type"]}))
    if requested not in state.event_types:
        raise invalid(
            ValidationError(
                {"event": [f"unknown event type {requested[:64]!r}; known: {', '.join(sorted(state.event_types))}"]}
            )
        )
    return requested


def sample_request(webhook_id: str) -> tuple[WebhooksState, Any, str]:
    """What ``/test`` and ``/preview`` read from their request: the state, the webhook (404 if not
    yours) and the sample's event type from the optional body ``{"event": ...}`` (400s)."""
    query_params()
    state = get_state()
    webhook = get_or_404(webhook_id)
    body = json_body(required=False)
    no_body_fields(body, ("event",))
    return state, webhook, sample_event_type(state, webhook, body.get("event"))


def sample_payload(
    state: WebhooksState, webhook: Any, event_type: str, *, event_id: str, now: datetime
) -> dict[str, Any]:
    """The standard payload of a sample ``event_type`` for ``webhook`` (``meta.test: true``): what
    ``POST /webhooks/<id>/test`` sends and ``POST /webhooks/<id>/preview`` shows."""
    return events.sample_payload(
        event_type,
        spec=state.event_types.spec(event_type),
        brand={"id": webhook.brand_id, **events.SAMPLE_BRAND},
        event_id=event_id,
        timestamp=now,
    )


def json_response(body: dict[str, Any], status: int) -> Response:
    """A JSON response with ``status``."""
    response = jsonify(body)
    response.status_code = status
    return response
