"""Routes of the deliveries resource: the delivery log, redelivery and test sends.

* ``GET /webhooks/<id>/deliveries``: newest first, ``status`` filter, ``limit`` /
  ``starting_after`` cursor (like the webhooks list);
* ``GET /webhooks/<id>/deliveries/<delivery_id>``: one delivery with every attempt;
* ``POST /webhooks/<id>/deliveries/<delivery_id>/redeliver``: 202, a new delivery of the
  same event (same ``meta.event_id``), enqueued when the request's transaction commits;
* ``POST /webhooks/<id>/test``: one immediate attempt of a sample event, built, signed
  and authenticated exactly like a real delivery, with ``meta.test: true``; logged as a
  delivery with ``is_test``; never retried.

Access: the webhook's brand must pass the policy; otherwise, and for deleted webhooks
and deliveries of another webhook, the answer is 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify
from marshmallow import ValidationError

from .. import ids, jobs, outbox, rows
from ..claim import Work, endpoint_of
from ..errors import APIError
from ..models import DELIVERY_STATUSES, SENDING
from ..rules import DELIVERY_ID, shown_id
from ..schemas import dump_delivery
from ..state import get_state
from .common import (
    get_or_404,
    invalid,
    json_body,
    json_response,
    no_body_fields,
    parse_limit,
    query_params,
    require_credentials,
    sample_payload,
    sample_request,
)


def register(bp: Blueprint) -> None:
    """Add the deliveries routes to ``bp``."""
    bp.add_url_rule("/<webhook_id>/deliveries", "list_deliveries", list_deliveries, methods=["GET"])
    bp.add_url_rule("/<webhook_id>/deliveries/<delivery_id>", "get_delivery", get_delivery, methods=["GET"])
    bp.add_url_rule("/<webhook_id>/deliveries/<delivery_id>/redeliver", "redeliver", redeliver, methods=["POST"])
    bp.add_url_rule("/<webhook_id>/test", "test_webhook", test_webhook, methods=["POST"])


# -- helpers ----------------------------------------------------------------------------------


def delivery_or_404(webhook: Any, delivery_id: str) -> Any:
    """The delivery ``delivery_id`` of ``webhook``, or a 404 (another webhook's is a 404 too)."""
    found = None
    if DELIVERY_ID.match(delivery_id):
        state = get_state()
        found = state.db.session.get(state.models.Delivery, delivery_id)
    if found is None or found.webhook_id != webhook.id:
        raise APIError(404, f"No such delivery: {shown_id(delivery_id)}.")
    return found


# -- routes ------------------------------------------------------------------------------------


def list_deliveries(webhook_id: str) -> Response:
    """``GET /webhooks/<id>/deliveries``: newest first; ``status``, ``limit``, ``starting_after``."""
    params = query_params(("limit", "starting_after", "status"))
    state = get_state()
    webhook = get_or_404(webhook_id)
    limit = parse_limit(params.get("limit"), state.settings.page_size, state.settings.max_page_size)
    rows = delivery_page(webhook, limit + 1, status=params.get("status"), starting_after=params.get("starting_after"))
    return jsonify(
        {
            "object": "list",
            "data": [dump_delivery(d) for d in rows[:limit]],
            "has_more": len(rows) > limit,
        }
    )


def delivery_page(
    webhook: Any,
    wanted: int,
    *,
    status: str | None = None,
    starting_after: str | None = None,
    event_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Any]:
    """Up to ``wanted`` deliveries of ``webhook``, newest first, after the delivery ``starting_after``
    (a keyset cursor on ``(created_at, id)``, served by the log's index), filtered by ``status``,
    ``event_type`` and ``since <= created_at < until``. 400 (``APIError``) on a bad status or cursor.
    The API's list and the portal's delivery log both read pages through this."""
    state = get_state()
    D = state.models.Delivery
    query = sa.select(D).where(D.webhook_id == webhook.id).order_by(D.created_at.desc(), D.id.desc())
    if status is not None:
        if status not in DELIVERY_STATUSES:
            raise invalid(ValidationError({"status": [f"must be one of {', '.join(DELIVERY_STATUSES)}"]}))
        query = query.where(D.status == status)
    if event_type is not None:
        Event = state.models.Event
        # Correlated: checked row by row in the log's index order, so a page stops after its rows.
        query = query.where(sa.exists().where(Event.id == D.event_id, Event.type == event_type))
    if since is not None:
        query = query.where(D.created_at >= since)
    if until is not None:
        query = query.where(D.created_at < until)
    if starting_after is not None:
        cursor = state.db.session.get(D, starting_after) if DELIVERY_ID.match(starting_after) else None
        if cursor is None or cursor.webhook_id != webhook.id:
            raise invalid(ValidationError({"starting_after": ["must be the id of a delivery of this webhook"]}))
        query = query.where(
            sa.or_(D.created_at < cursor.created_at, sa.and_(D.created_at == cursor.created_at, D.id < cursor.id))
        )
    return list(state.db.session.execute(query.limit(wanted)).scalars().all())


def get_delivery(webhook_id: str, delivery_id: str) -> Response:
    """``GET /webhooks/<id>/deliveries/<delivery_id>``: the delivery with its payload and every attempt."""
    query_params()
    webhook = get_or_404(webhook_id)
    return jsonify(dump_delivery(delivery_or_404(webhook, delivery_id), detail=True))


def redeliver(webhook_id: str, delivery_id: str) -> Response:
    """``POST .../redeliver``: 202 and a new delivery of the same event, sent by a worker."""
    query_params()
    state = get_state()
    delivery_or_404(get_or_404(webhook_id), delivery_id)  # 404 before judging the body
    no_body_fields(json_body(required=False))
    copy = redeliver_delivery(webhook_id, delivery_id)
    return json_response(dump_delivery(state.db.session.get(state.models.Delivery, copy), detail=True), 202)


def redeliver_delivery(webhook_id: str, delivery_id: str) -> str:
    """A new delivery of the event of ``delivery_id`` (same ``meta.event_id``), enqueued once this
    commits; its id. ``APIError``: 404 when not the caller's, 409 for a test or an inactive webhook."""
    state = get_state()
    webhook = get_or_404(webhook_id)
    original = delivery_or_404(webhook, delivery_id)
    if original.is_test:
        raise APIError(409, "A test delivery cannot be redelivered: send a new one with POST /webhooks/<id>/test.")
    if not webhook.active:
        raise APIError(409, 'The webhook is inactive: activate it (PATCH {"active": true}) before redelivering.')
    session = state.db.session
    (copy_id,) = rows.insert_deliveries(state, [(original.event_id, webhook.id)])
    outbox.track(state, session(), [copy_id])  # enqueued once this commit succeeds
    session.commit()
    return str(copy_id)


def test_webhook(webhook_id: str) -> Response:
    """``POST /webhooks/<id>/test``: one immediate attempt of a sample event; 200 with its result."""
    state, webhook, event_type = sample_request(webhook_id)
    result, logged = send_test(webhook, event_type)
    error = None
    if result.status != "succeeded":
        error = {"type": result.error_type or "http_error", "message": result.error_message}
    return jsonify(
        {
            "object": "test_result",
            "success": result.status == "succeeded",
            "status_code": result.status_code,
            "duration_ms": result.duration_ms,
            "error": error,
            "delivery": dump_delivery(logged, detail=True),
        }
    )


def send_test(webhook: Any, event_type: str) -> tuple[Any, Any]:
    """Send one immediate attempt of a sample ``event_type`` to ``webhook`` (found with the policy's
    leave); the attempt's result and the logged test delivery. 409 for unreadable credentials."""
    state = get_state()
    require_credentials(webhook, "send a test")  # 409 before anything is written
    m = state.models
    session = state.db.session
    now = ids.utcnow()
    event_id = ids.new_id(ids.EVENT)
    payload = sample_payload(state, webhook, event_type, event_id=event_id, now=now)
    session.add(m.Event(id=event_id, type=event_type, brand_id=webhook.brand_id, payload=payload, created_at=now))
    session.flush()  # the event row first: the delivery refers to it
    (test_id,) = rows.insert_deliveries(
        state, [(event_id, webhook.id)], now=now, status=SENDING, is_test=True, attempt_count=1, claimed_at=now
    )
    work = Work(
        delivery_id=test_id,
        attempt=1,
        event_id=event_id,
        event_type=event_type,
        payload=payload,
        is_test=True,
        endpoint=endpoint_of(webhook, now),
    )
    session.commit()
    result = jobs.send_now(state, work)
    session.expire_all()
    return result, session.get(m.Delivery, test_id)
