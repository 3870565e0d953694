"""Routes of the webhooks resource: create, list, retrieve, update and delete endpoints,
rotate the signing secret, and replay what an endpoint did not get.

Validation lives in :mod:`flask_trakkr_webhooks.schemas` (pure); this module does the
HTTP and database parts and asks the access policy:

* a webhook of a brand the policy refuses is answered 404 (its existence is not told);
* creating one for a refused brand, or listing with a refused ``brand_id``, is 403;
* the unfiltered list shows only webhooks of brands the policy allows.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify, url_for
from marshmallow import ValidationError

from .. import auth, ids, outbox, replay, rows, schemas, signing, ssrf
from ..errors import APIError
from ..rules import canonical_uuid
from ..state import get_state
from .common import (
    BLUEPRINT_NAME,
    attach_credentials,
    encrypted_columns,
    find_webhook,
    get_or_404,
    invalid,
    json_body,
    json_response,
    load_webhooks,
    may_manage,
    parse_limit,
    query_params,
    unreadable_error,
    webhook_query,
)

#: What the service functions take for a request body: read only once the webhook is found,
#: so another brand's webhook is a 404 whatever the body (the API passes ``json_body``).
Body = Callable[[], dict[str, Any]]

#: Rows read per query while the unfiltered list looks for webhooks the policy allows.
_SCAN_BATCH = 100

#: The save-time answer for a host name the guard refuses, whatever the reason: private
#: addresses and unresolvable names get the same words, so the API is no DNS oracle.
HOST_REFUSED = (
    "must resolve to a public address reachable by the sender (the server's log has the detail; "
    "an operator can admit private receivers with TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS or "
    "TRAKKR_WEBHOOKS_ALLOWED_CIDRS)"
)

#: Plain http to a public destination while REQUIRE_HTTPS is on.
HTTPS_REQUIRED = (
    "must use https (TRAKKR_WEBHOOKS_REQUIRE_HTTPS is on; plain http is allowed only to private "
    "receivers admitted by TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS or TRAKKR_WEBHOOKS_ALLOWED_CIDRS)"
)

log = logging.getLogger("flask_trakkr_webhooks")


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


def _vet_url(url: str) -> None:
    """The SSRF guard at save time: resolve the URL's host and refuse private destinations (400 on ``url``).

    For an IP literal the message names the refused address class and the setting that
    would allow it (the caller wrote the address). For a host name it is :data:`HOST_REFUSED`
    whether the name resolves to a refused address or does not resolve: what it resolves to
    goes to the operator's log only. The same check runs again before every delivery (a
    name can be re-pointed after it is saved).

    ``REQUIRE_HTTPS`` is judged here too, once the destination is known: plain ``http`` is
    allowed to a destination that is private and admitted (``ALLOW_PRIVATE_NETWORKS`` or
    ``ALLOWED_CIDRS``: a development receiver on this machine needs that one setting), never
    to a public one. Every reason a URL is refused is answered at once.
    """
    settings = get_state().settings
    problems: list[str] = []
    needs_https = settings.require_https and urlsplit(url).scheme.lower() == "http"
    try:
        addresses = ssrf.check_url(url, **ssrf.settings_kwargs(settings))
    except ssrf.MalformedURL as exc:  # about the text the caller sent, not about DNS
        raise invalid(ValidationError({"url": [str(exc)]})) from None
    except ssrf.SSRFError as exc:  # BlockedAddress, UnresolvableHost
        if needs_https:
            problems.append(HTTPS_REQUIRED)
        if isinstance(exc, ssrf.BlockedAddress) and _is_ip_literal(url):
            problems.append(str(exc))
        else:
            log.warning("webhook URL refused at save time: %s", exc)
            problems.append(HOST_REFUSED)
        raise invalid(ValidationError({"url": problems})) from None
    if needs_https and any(ssrf.classify(address) is None for address in addresses):
        raise invalid(ValidationError({"url": [HTTPS_REQUIRED]}))


def _is_ip_literal(url: str) -> bool:
    """Whether the URL's host is an IP address as written (``10.0.0.5``, ``[::1]``), not a name."""
    try:
        ipaddress.ip_address(urlsplit(url).hostname or "")
    except ValueError:
        return False
    return True


def _respond(webhook_id: str, status: int = 200) -> Response:
    """The webhook object of ``webhook_id`` as stored now (read again after a commit)."""
    state = get_state()
    (webhook,) = load_webhooks(state, webhook_query(state).where(state.models.Webhook.id == webhook_id))
    return json_response(schemas.dump_webhook(webhook), status)


# -- routes -----------------------------------------------------------------------------


def create_webhook() -> Response:
    """``POST /webhooks``: register an endpoint; 201 with the webhook object."""
    query_params()
    webhook = create(json_body())
    response = _respond(webhook.id, 201)
    response.headers["Location"] = url_for(f"{BLUEPRINT_NAME}.get_webhook", webhook_id=webhook.id)
    return response


def create(body: dict[str, Any]) -> Any:
    """Register an endpoint from a request ``body`` (the fields of ``POST /webhooks``); the new
    webhook, committed. ``APIError``: 403 for a brand the policy refuses, 400 for a bad field.
    The API and the portal both create webhooks through this."""
    state = get_state()
    # Ask the policy before judging the rest, so an unauthenticated caller gets its 401/403.
    brand_id = canonical_uuid(body.get("brand_id"))
    if brand_id is not None and not may_manage(brand_id):
        raise APIError(
            403, "You may not manage webhooks of this brand.", {"brand_id": ["the access policy refused this brand"]}
        )
    try:
        values = schemas.prepare_create(body, state.settings, state.event_types)
    except ValidationError as exc:
        raise invalid(exc) from None
    _vet_url(values["url"])
    webhook = state.models.Webhook(**values)
    now = ids.utcnow()
    webhook.created_at = webhook.updated_at = now
    state.db.session.add(webhook)
    state.db.session.commit()
    return webhook


def list_webhooks() -> Response:
    """``GET /webhooks``: newest first, ``limit`` / ``starting_after`` cursor, ``brand_id`` filter."""
    state = get_state()
    settings = state.settings
    Webhook = state.models.Webhook
    params = query_params(("limit", "starting_after", "brand_id"))
    limit = parse_limit(params.get("limit"), settings.page_size, settings.max_page_size)

    brand_id = None
    if "brand_id" in params:
        brand_id = canonical_uuid(params["brand_id"])
        if brand_id is None:
            raise invalid(ValidationError({"brand_id": ["must be a UUID"]}))
        if not may_manage(brand_id):
            raise APIError(
                403,
                "You may not manage webhooks of this brand.",
                {"brand_id": ["the access policy refused this brand"]},
            )

    query = webhook_query(state).where(Webhook.deleted_at.is_(None))
    if brand_id is not None:
        query = query.where(Webhook.brand_id == brand_id)
    query = query.order_by(Webhook.created_at.desc(), Webhook.id.desc())

    after: tuple[Any, str] | None = None
    if "starting_after" in params:
        # A deleted webhook still marks its place, so paging survives deletions.
        cursor = find_webhook(params["starting_after"], include_deleted=True)
        if cursor is None:
            raise invalid(ValidationError({"starting_after": ["must be the id of a webhook you can see"]}))
        after = (cursor.created_at, cursor.id)

    page = _collect(query, after, limit + 1, filter_policy=brand_id is None)
    return jsonify(
        {
            "object": "list",
            "data": [schemas.dump_webhook(w) for w in page[:limit]],
            "has_more": len(page) > limit,
        }
    )


def _collect(query: Any, after: tuple[Any, str] | None, wanted: int, *, filter_policy: bool) -> list[Any]:
    """Up to ``wanted`` rows of ``query`` after the ``(created_at, id)`` keyset ``after``.

    Without a brand filter, rows of brands the policy refuses are skipped: read in
    batches until enough are found, asking the policy once per brand (it is cached).
    ``query`` is built on :func:`.common.webhook_query`: only the rows answered are decrypted.
    """
    state = get_state()
    Webhook = state.models.Webhook
    session = state.db.session
    names = encrypted_columns(state)
    found: list[Any] = []
    batch = max(wanted, _SCAN_BATCH) if filter_policy else wanted
    while True:
        page_query = query
        if after is not None:
            created_at, last_id = after
            page_query = page_query.where(
                sa.or_(
                    Webhook.created_at < created_at,
                    sa.and_(Webhook.created_at == created_at, Webhook.id < last_id),
                )
            )
        rows = session.execute(page_query.limit(batch)).all()
        for row in rows:
            webhook = row[0]
            if not filter_policy or may_manage(webhook.brand_id):
                attach_credentials(webhook, row._mapping, names)
                found.append(webhook)
                if len(found) == wanted:
                    return found
        if len(rows) < batch:
            return found
        after = (rows[-1][0].created_at, rows[-1][0].id)


def get_webhook(webhook_id: str) -> Response:
    """``GET /webhooks/<id>``: the webhook object."""
    query_params()
    return json_response(schemas.dump_webhook(get_or_404(webhook_id)), 200)


def update_webhook(webhook_id: str) -> Response:
    """``PATCH /webhooks/<id>``: change some fields; the provider follows a new URL unless given."""
    query_params()
    webhook = update(webhook_id, json_body)
    return _respond(webhook.id)


def update(webhook_id: str, read_body: Body) -> Any:
    """Change the fields of ``body`` (as ``PATCH /webhooks/<id>``) and commit; the webhook.
    ``APIError``: 404 when it is not the caller's, 400 for a bad field, 409 for unreadable credentials."""
    state = get_state()
    webhook = get_or_404(webhook_id, lock=True)
    body = read_body()  # after the 404: another brand's webhook is not told about its body
    try:
        changes = schemas.prepare_update(body, schemas.current_values(webhook), state.settings, state.event_types)
    except ValidationError as exc:
        raise invalid(exc) from None
    # A credential that cannot be decrypted may be replaced or dropped, not kept (nor answered).
    replaced = set(changes) | ({"previous_signing_secret"} if "signing_secret" in changes else set())
    kept = [name for name in schemas.unreadable_credentials(webhook) if name not in replaced]
    conflict = unreadable_error(webhook, "update the webhook and keep its credentials", kept)
    if conflict is not None:
        raise conflict
    if "url" in changes:
        _vet_url(changes["url"])
    if changes:
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
    return webhook


def delete_webhook(webhook_id: str) -> Response:
    """``DELETE /webhooks/<id>``: soft delete; open deliveries are cancelled in the same transaction."""
    query_params()
    webhook = delete(webhook_id)
    return jsonify({"id": webhook.id, "object": "webhook", "deleted": True})


def delete(webhook_id: str) -> Any:
    """Soft-delete the webhook (404 when it is not the caller's), drop its credentials, cancel its
    open deliveries, commit; the deleted webhook."""
    state = get_state()
    webhook = get_or_404(webhook_id, lock=True)
    now = ids.utcnow()
    webhook.deleted_at = now
    webhook.active = False
    webhook.updated_at = now
    # Nothing will be sent for it again: keep the log, drop the credentials.
    for column in (*auth.secret_columns(), "signing_secret", "previous_signing_secret"):
        setattr(webhook, column, None)
    rows.cancel_open(state, webhook.id, "the webhook was deleted", now=now)
    state.db.session.commit()
    return webhook


def rotate_secret(webhook_id: str) -> Response:
    """``POST /webhooks/<id>/rotate-secret``: a new signing secret (generated, or the body's
    ``signing_secret``); the old one keeps signing ``webhook-signature`` for ``SECRET_GRACE_PERIOD``.

    200 with the webhook object (its ``signing_secret`` is the new one, and
    ``previous_secret_expires_at`` says until when the old one signs too). Rotating again
    within the grace period replaces the previous secret with the one just retired.
    """
    query_params()
    webhook = rotate(webhook_id, lambda: json_body(required=False))
    return _respond(webhook.id)


def rotate(webhook_id: str, read_body: Body) -> Any:
    """Rotate the signing secret (as ``POST /webhooks/<id>/rotate-secret`` with ``body``) and
    commit; the webhook, whose ``signing_secret`` is the new one."""
    state = get_state()
    webhook = get_or_404(webhook_id, lock=True)
    try:
        loaded = schemas.load_request(schemas.RotateSecretSchema(), read_body())
    except ValidationError as exc:
        raise invalid(exc) from None
    # The current secret must be readable: it keeps signing during the grace period.
    conflict = unreadable_error(webhook, "rotate the signing secret", ("signing_secret",))
    if conflict is not None:
        raise conflict
    new = loaded.get("signing_secret") or signing.generate_secret()
    old = webhook.signing_secret
    if new == old:
        raise invalid(ValidationError({"signing_secret": ["must differ from the current secret"]}))
    now = ids.utcnow()
    grace = state.settings.secret_grace_period
    keep = old is not None and grace > 0
    webhook.previous_signing_secret = old if keep else None
    webhook.previous_secret_expires_at = now + timedelta(seconds=grace) if keep else None
    webhook.signing_secret = new
    webhook.updated_at = now
    state.db.session.commit()
    return webhook


def replay_webhook(webhook_id: str) -> Response:
    """``POST /webhooks/<id>/replay``: redeliver, as new deliveries of the same events (same
    ``meta.event_id``), what failed, was cancelled or was missed since ``since``.

    Body: ``since`` (required, ISO 8601 with a time zone), ``status`` (``failed`` by default;
    ``cancelled``, ``missed``, or a list), ``limit`` (at most :data:`schemas.MAX_REPLAY`).
    202 with the count and the new deliveries, enqueued when this commits; 409 when the
    webhook is inactive (re-enable it first: ``PATCH {"active": true}``).
    """
    query_params()
    webhook, loaded, replayed, more = replay_since(webhook_id, json_body)
    return json_response(
        {
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
        },
        202,
    )


def replay_since(webhook_id: str, read_body: Body) -> tuple[Any, dict[str, Any], list[Any], bool]:
    """Replay (as ``POST /webhooks/<id>/replay`` with ``body``) and commit: the webhook, the
    loaded body, the replayed deliveries and whether more were left."""
    state = get_state()
    webhook = get_or_404(webhook_id, lock=True)  # one replay at a time: the next sees these deliveries
    try:
        loaded = schemas.load_request(schemas.ReplaySchema(), read_body())
    except ValidationError as exc:
        raise invalid(exc) from None
    if not webhook.active:
        raise APIError(409, 'The webhook is inactive: activate it (PATCH {"active": true}) before replaying.')
    session = state.db.session
    replayed, more = replay.replay(
        state, webhook, since=loaded["since"], statuses=loaded["status"], limit=loaded["limit"]
    )
    if replayed:
        outbox.track(state, session(), [r.delivery_id for r in replayed])  # enqueued once this commits
    session.commit()
    return webhook, loaded, list(replayed), more
