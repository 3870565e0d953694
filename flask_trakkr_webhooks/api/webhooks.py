"""Routes of the webhooks resource: create, list, retrieve, update and delete endpoints,
rotate the signing secret, and replay what an endpoint did not get.

Validation lives in :mod:`flask_trakkr_webhooks.schemas` (pure); this module does the
HTTP and database parts and asks the access policy:

* a webhook of a brand the policy refuses is answered 404 (its existence is not told);
* creating one for a refused brand, or listing with a refused ``brand_id``, is 403;
* the unfiltered list shows only webhooks of brands the policy allows.
"""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Iterable

import sqlalchemy as sa
from flask import Blueprint, jsonify, request, url_for
from marshmallow import ValidationError

from .. import health, ids, outbox, schemas, signing, ssrf
from ..errors import APIError
from ..extension import get_state
from ..models import CANCELLED, PENDING, QUEUED, RETRYING
from ..providers.detect import detect_provider
from . import BLUEPRINT_NAME, json_body, may_manage

#: What a webhook id may look like; anything else is answered 404 without a query.
WEBHOOK_ID = re.compile(r"^wh_[A-Za-z0-9_-]{1,37}$")
#: Delivery states a deleted webhook's deliveries are cancelled from (the engine skips cancelled ones).
CANCELLABLE_STATUSES = (PENDING, QUEUED, RETRYING)
#: Rows read per query while the unfiltered list looks for webhooks the policy allows.
_SCAN_BATCH = 100


def register(bp: Blueprint) -> None:
    """Add the webhooks routes to ``bp``."""
    bp.add_url_rule("", "create_webhook", create_webhook, methods=["POST"])
    bp.add_url_rule("", "list_webhooks", list_webhooks, methods=["GET"])
    bp.add_url_rule("/<webhook_id>", "get_webhook", get_webhook, methods=["GET"])
    bp.add_url_rule("/<webhook_id>", "update_webhook", update_webhook, methods=["PATCH"])
    bp.add_url_rule("/<webhook_id>", "delete_webhook", delete_webhook, methods=["DELETE"])
    bp.add_url_rule("/<webhook_id>/rotate-secret", "rotate_secret", rotate_secret, methods=["POST"])
    bp.add_url_rule("/<webhook_id>/replay", "replay_webhook", replay_webhook, methods=["POST"])


# -- helpers ----------------------------------------------------------------------------

def _invalid(error: ValidationError) -> APIError:
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


def _query_params(allowed: Iterable[str] = ()) -> dict[str, str]:
    """The query parameters, each at most once; an unknown or repeated one is a 400 naming it."""
    allowed = set(allowed)
    errors: dict[str, list[str]] = {}
    for name in request.args:
        if name not in allowed:
            errors[name] = ["unknown query parameter" + (f"; use {', '.join(sorted(allowed))}" if allowed else "")]
        elif len(request.args.getlist(name)) > 1:
            errors[name] = ["must be given at most once"]
    if errors:
        raise _invalid(ValidationError(errors))
    return {name: request.args[name] for name in request.args}


def _parse_limit(raw: str | None, default: int, maximum: int) -> int:
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw) or not 1 <= int(raw) <= maximum:
        raise _invalid(ValidationError({"limit": [f"must be an integer from 1 to {maximum}"]}))
    return int(raw)


def _not_found(webhook_id: str) -> APIError:
    shown = webhook_id if len(webhook_id) <= 64 else webhook_id[:64] + "…"
    return APIError(404, f"No such webhook: {shown!r}.")


def _find(webhook_id: str, *, include_deleted: bool = False, lock: bool = False) -> Any:
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


def _get_or_404(webhook_id: str, *, lock: bool = False) -> Any:
    webhook = _find(webhook_id, lock=lock)
    if webhook is None:
        raise _not_found(webhook_id)
    return webhook


def _vet_url(url: str) -> None:
    """The SSRF guard at save time: resolve the URL's host and refuse private destinations (400 on ``url``).

    The message names the refused address class and the setting that would allow it. The
    same check runs again before every delivery (a name can be re-pointed after it is saved).
    """
    try:
        ssrf.check_url(url, **ssrf.settings_kwargs(get_state().settings))
    except ssrf.SSRFError as exc:  # BlockedAddress, UnresolvableHost, MalformedURL
        raise _invalid(ValidationError({"url": [str(exc)]})) from None


def _respond(webhook: Any, status: int = 200):
    response = jsonify(schemas.dump_webhook(webhook))
    response.status_code = status
    return response


# -- routes -----------------------------------------------------------------------------

def create_webhook():
    """``POST /webhooks``: register an endpoint; 201 with the webhook object."""
    _query_params()
    body = json_body()
    state = get_state()
    # Ask the policy before judging the rest, so an unauthenticated caller gets its 401/403.
    brand_id = schemas.canonical_uuid(body.get("brand_id"))
    if brand_id is not None and not may_manage(brand_id):
        raise APIError(403, "You may not manage webhooks of this brand.",
                       {"brand_id": ["the access policy refused this brand"]})
    try:
        values = schemas.prepare_create(body, state.settings, state.event_types)
    except ValidationError as exc:
        raise _invalid(exc) from None
    _vet_url(values["url"])
    webhook = state.models.Webhook(**values, provider=detect_provider(values["url"]))
    now = ids.utcnow()
    webhook.created_at = webhook.updated_at = now
    state.db.session.add(webhook)
    state.db.session.commit()
    response = _respond(webhook, 201)
    response.headers["Location"] = url_for(f"{BLUEPRINT_NAME}.get_webhook", webhook_id=webhook.id)
    return response


def list_webhooks():
    """``GET /webhooks``: newest first, ``limit`` / ``starting_after`` cursor, ``brand_id`` filter."""
    state = get_state()
    settings = state.settings
    Webhook = state.models.Webhook
    params = _query_params(("limit", "starting_after", "brand_id"))
    limit = _parse_limit(params.get("limit"), settings.page_size, settings.max_page_size)

    brand_id = None
    if "brand_id" in params:
        brand_id = schemas.canonical_uuid(params["brand_id"])
        if brand_id is None:
            raise _invalid(ValidationError({"brand_id": ["must be a UUID"]}))
        if not may_manage(brand_id):
            raise APIError(403, "You may not manage webhooks of this brand.",
                           {"brand_id": ["the access policy refused this brand"]})

    query = sa.select(Webhook).where(Webhook.deleted_at.is_(None))
    if brand_id is not None:
        query = query.where(Webhook.brand_id == brand_id)
    query = query.order_by(Webhook.created_at.desc(), Webhook.id.desc())

    after: tuple[Any, str] | None = None
    if "starting_after" in params:
        # A deleted webhook still marks its place, so paging survives deletions.
        cursor = _find(params["starting_after"], include_deleted=True)
        if cursor is None:
            raise _invalid(ValidationError({"starting_after": ["must be the id of a webhook you can see"]}))
        after = (cursor.created_at, cursor.id)

    page = _collect(query, after, limit + 1, filter_policy=brand_id is None)
    return jsonify({
        "object": "list",
        "data": [schemas.dump_webhook(w) for w in page[:limit]],
        "has_more": len(page) > limit,
    })


def _collect(query: Any, after: tuple[Any, str] | None, wanted: int, *, filter_policy: bool) -> list[Any]:
    """Up to ``wanted`` rows of ``query`` after the ``(created_at, id)`` keyset ``after``.

    Without a brand filter, rows of brands the policy refuses are skipped: read in
    batches until enough are found, asking the policy once per brand (it is cached).
    """
    Webhook = get_state().models.Webhook
    session = get_state().db.session
    found: list[Any] = []
    batch = max(wanted, _SCAN_BATCH) if filter_policy else wanted
    while True:
        page_query = query
        if after is not None:
            created_at, last_id = after
            page_query = page_query.where(sa.or_(
                Webhook.created_at < created_at,
                sa.and_(Webhook.created_at == created_at, Webhook.id < last_id),
            ))
        rows = session.execute(page_query.limit(batch)).scalars().all()
        for row in rows:
            if not filter_policy or may_manage(row.brand_id):
                found.append(row)
                if len(found) == wanted:
                    return found
        if len(rows) < batch:
            return found
        after = (rows[-1].created_at, rows[-1].id)


def get_webhook(webhook_id: str):
    """``GET /webhooks/<id>``: the webhook object."""
    _query_params()
    return _respond(_get_or_404(webhook_id))


def update_webhook(webhook_id: str):
    """``PATCH /webhooks/<id>``: change some fields; the provider follows the URL."""
    _query_params()
    state = get_state()
    webhook = _get_or_404(webhook_id, lock=True)
    body = json_body()
    try:
        changes = schemas.prepare_update(body, schemas.current_values(webhook), state.settings, state.event_types)
    except ValidationError as exc:
        raise _invalid(exc) from None
    if "url" in changes:
        _vet_url(changes["url"])
    if changes:
        if "url" in changes:
            webhook.provider = detect_provider(changes["url"])
        if changes.get("active") is True:
            # Turning a webhook back on clears why it was switched off and its failure streak.
            webhook.disabled_reason = None
            webhook.disabled_at = None
            webhook.consecutive_failures = 0
            webhook.failing_since = None
        if "signing_secret" in changes:
            # A secret set outright replaces every other at once (rotate-secret keeps a grace period).
            webhook.previous_signing_secret = None
            webhook.previous_secret_expires_at = None
        for name, value in changes.items():
            setattr(webhook, name, value)
        webhook.updated_at = ids.utcnow()
        state.db.session.commit()
    return _respond(webhook)


def delete_webhook(webhook_id: str):
    """``DELETE /webhooks/<id>``: soft delete; open deliveries are cancelled in the same transaction."""
    _query_params()
    state = get_state()
    Delivery = state.models.Delivery
    webhook = _get_or_404(webhook_id, lock=True)
    now = ids.utcnow()
    webhook.deleted_at = now
    webhook.active = False
    webhook.updated_at = now
    # Nothing will be sent for it again: keep the log, drop the credentials.
    for column in ("auth_token", "auth_password", "api_key_value", "signing_secret", "previous_signing_secret"):
        setattr(webhook, column, None)
    state.db.session.execute(
        sa.update(Delivery)
        .where(Delivery.webhook_id == webhook.id, Delivery.status.in_(CANCELLABLE_STATUSES))
        .values(status=CANCELLED, next_attempt_at=None, completed_at=now, updated_at=now,
                last_error="cancelled: the webhook was deleted")
        .execution_options(synchronize_session=False)
    )
    state.db.session.commit()
    return jsonify({"id": webhook.id, "object": "webhook", "deleted": True})


def rotate_secret(webhook_id: str):
    """``POST /webhooks/<id>/rotate-secret``: a new signing secret (generated, or the body's
    ``signing_secret``); the old one keeps signing ``webhook-signature`` for ``SECRET_GRACE_PERIOD``.

    200 with the webhook object (its ``signing_secret`` is the new one, and
    ``previous_secret_expires_at`` says until when the old one signs too). Rotating again
    within the grace period replaces the previous secret with the one just retired.
    """
    _query_params()
    state = get_state()
    webhook = _get_or_404(webhook_id, lock=True)
    try:
        loaded = schemas.load_request(schemas.RotateSecretSchema(), json_body(required=False))
    except ValidationError as exc:
        raise _invalid(exc) from None
    new = loaded.get("signing_secret") or signing.generate_secret()
    old = webhook.signing_secret
    if new == old:
        raise _invalid(ValidationError({"signing_secret": ["must differ from the current secret"]}))
    now = ids.utcnow()
    grace = state.settings.secret_grace_period
    keep = old is not None and grace > 0
    webhook.previous_signing_secret = old if keep else None
    webhook.previous_secret_expires_at = now + timedelta(seconds=grace) if keep else None
    webhook.signing_secret = new
    webhook.updated_at = now
    state.db.session.commit()
    return _respond(webhook)


def replay_webhook(webhook_id: str):
    """``POST /webhooks/<id>/replay``: redeliver, as new deliveries of the same events (same
    ``meta.event_id``), what failed, was cancelled or was missed since ``since``.

    Body: ``since`` (required, ISO 8601 with a time zone), ``status`` (``failed`` by default;
    ``cancelled``, ``missed``, or a list), ``limit`` (at most :data:`schemas.MAX_REPLAY`).
    202 with the count and the new deliveries, enqueued when this commits; 409 when the
    webhook is inactive (re-enable it first: ``PATCH {"active": true}``).
    """
    _query_params()
    state = get_state()
    webhook = _get_or_404(webhook_id, lock=True)  # one replay at a time: the next sees these deliveries
    try:
        loaded = schemas.load_request(schemas.ReplaySchema(), json_body())
    except ValidationError as exc:
        raise _invalid(exc) from None
    if not webhook.active:
        raise APIError(409, "The webhook is inactive: activate it (PATCH {\"active\": true}) before replaying.")
    session = state.db.session
    replayed, more = health.replay(state, webhook, since=loaded["since"], statuses=loaded["status"],
                                   limit=loaded["limit"])
    if replayed:
        outbox.track(state, session(), [r.delivery_id for r in replayed])  # enqueued once this commits
    session.commit()
    response = jsonify({
        "object": "replay",
        "webhook_id": webhook.id,
        "since": ids.isoformat(loaded["since"]),
        "status": list(loaded["status"]),
        "count": len(replayed),
        "has_more": more,
        "deliveries": [
            {"id": r.delivery_id, "event_id": r.event_id, "event_type": r.event_type, "replayed_status": r.reason}
            for r in replayed
        ],
    })
    response.status_code = 202
    return response
