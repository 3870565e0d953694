"""What the API's route modules share: errors, request parsing, the access policy, lookups.

Every helper a route module needs from another lives here, so route modules import this
one and never each other.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, has_request_context, jsonify, request
from marshmallow import ValidationError
from sqlalchemy import orm
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.exceptions import HTTPException

from .. import crypto, events, ids, schemas
from ..errors import APIError
from ..rules import WEBHOOK_ID, shown_id
from ..state import WebhooksState, get_state

BLUEPRINT_NAME = "trakkr_webhooks"

log = logging.getLogger("flask_trakkr_webhooks")

#: Label prefix of the stored (still encrypted) text of a credential column in :func:`webhook_query`.
_RAW = "_raw_"


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
        api_error.message = f"Invalid request: {name}: {messages[0]}" + (
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

    Loaded by :func:`load_webhooks`, so a credential the configured key cannot decrypt never
    makes this fail. ``lock`` reads it ``FOR NO KEY UPDATE`` (PostgreSQL), so two edits of one
    webhook are judged one after the other, each against the values the other left, while the
    foreign-key checks of deliveries an emit inserts for it (``FOR KEY SHARE``) do not wait.
    """
    if not WEBHOOK_ID.fullmatch(webhook_id):
        return None
    state = get_state()
    query = webhook_query(state).where(state.models.Webhook.id == webhook_id)
    if lock:
        # Never FOR UPDATE: it would block every delivery insert's foreign-key check until commit.
        query = query.with_for_update(key_share=True)
    found = load_webhooks(state, query)
    webhook = found[0] if found else None
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


# -- credentials ------------------------------------------------------------------------


def encrypted_columns(state: WebhooksState) -> tuple[str, ...]:
    """The webhook columns stored encrypted (credentials and signing secrets)."""
    return tuple(c.name for _, columns in crypto.encrypted_columns(state.models.Webhook) for c in columns)


def webhook_query(state: WebhooksState) -> sa.Select[Any]:
    """``SELECT`` webhooks with their encrypted columns deferred and their stored text beside them.

    Loading a row then decrypts nothing; :func:`load_webhooks` decrypts each value on its own,
    so one value written under another key marks that value unreadable instead of failing the
    whole load (and with it the request, or a whole list).
    """
    Webhook = state.models.Webhook
    names = encrypted_columns(state)
    table = Webhook.__table__
    raw = [sa.type_coerce(table.c[name], sa.Text).label(_RAW + name) for name in names]
    return (
        sa.select(Webhook, *raw)
        .options(*(orm.defer(getattr(Webhook, name)) for name in names))
        # Read the row as stored now, whatever an earlier query of this session left in memory.
        .execution_options(populate_existing=True)
    )


def load_webhooks(state: WebhooksState, query: sa.Select[Any]) -> list[Any]:
    """The webhooks of ``query`` (built on :func:`webhook_query`), credentials attached."""
    rows = state.db.session.execute(query).all()
    names = encrypted_columns(state)
    for row in rows:
        attach_credentials(row[0], row._mapping, names)
    return [row[0] for row in rows]


def attach_credentials(webhook: Any, stored: Mapping[Any, Any], names: Sequence[str]) -> None:
    """Decrypt each stored credential of ``webhook`` into its (deferred) attribute; note the
    ones the configured key cannot decrypt (:func:`schemas.unreadable_credentials`) and log them."""
    unreadable: list[str] = []
    expires = ids.as_utc(webhook.previous_secret_expires_at)
    for name in names:
        text = stored[_RAW + name]
        try:
            value = None if text is None else crypto.decrypt_value(text)
        except crypto.DecryptionError as exc:
            if name == "previous_signing_secret" and (expires is None or expires <= ids.utcnow()):
                value = None  # its grace period is over: it never signs again, so it is as good as gone
            else:
                unreadable.append(name)
                log.warning("webhook %s: stored %s cannot be decrypted: %s", webhook.id, name, exc)
                continue
        set_committed_value(webhook, name, value)  # loaded, not changed: nothing is written back
    setattr(webhook, schemas.UNREADABLE_ATTRIBUTE, tuple(unreadable))


def unreadable_error(webhook: Any, action: str, names: Iterable[str] | None = None) -> APIError | None:
    """The 409 for ``action`` on ``webhook`` when credentials it needs (``names``; default: every
    one) cannot be decrypted with the configured key, else ``None``."""
    unreadable = schemas.unreadable_credentials(webhook)
    wanted = [name for name in unreadable if names is None or name in set(names)]
    if not wanted:
        return None
    return APIError(
        409,
        f"Cannot {action}: the stored {', '.join(wanted)} of this webhook cannot be decrypted with the "
        f"configured encryption key ({crypto.SETTING}); it was written under another key. Add that key to "
        f"{crypto.SETTING} (after the current one, then run `flask webhooks rotate-key`), or send the "
        "credential again with PATCH (a new signing_secret, or the auth fields), or delete the webhook.",
        {name: ["cannot be decrypted with the configured encryption key"] for name in wanted},
    )


def require_credentials(webhook: Any, action: str) -> None:
    """Raise :func:`unreadable_error` (409) when any stored credential of ``webhook`` is unreadable."""
    error = unreadable_error(webhook, action)
    if error is not None:
        raise error


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


def missing_policy_error() -> APIError | None:
    """The 403 of the secure default: no access policy is configured (and neither testing nor
    ``OPEN_API`` allows every request); ``None`` when requests may go on to the policy."""
    state = get_state()
    if state.access_policy is None and not (current_app.testing or state.settings.open_api):
        return APIError(
            403,
            "No access policy is configured: register one with @webhooks.access_policy "
            "(or set TRAKKR_WEBHOOKS_OPEN_API = True to allow every request).",
        )
    return None


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
