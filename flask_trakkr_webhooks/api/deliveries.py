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

import re
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, jsonify
from marshmallow import ValidationError

from .. import delivery, events, ids, outbox
from ..errors import APIError
from ..extension import get_state
from ..models import DELIVERY_STATUSES, PENDING, SENDING
from . import json_body
from .webhooks import _get_or_404, _invalid, _parse_limit, _query_params

#: What a delivery id may look like; anything else is answered 404 without a query.
DELIVERY_ID = re.compile(r"^dlv_[A-Za-z0-9_-]{1,37}\Z")


def register(bp: Blueprint) -> None:
    """Add the deliveries routes to ``bp``."""
    bp.add_url_rule("/<webhook_id>/deliveries", "list_deliveries", list_deliveries, methods=["GET"])
    bp.add_url_rule("/<webhook_id>/deliveries/<delivery_id>", "get_delivery", get_delivery, methods=["GET"])
    bp.add_url_rule("/<webhook_id>/deliveries/<delivery_id>/redeliver", "redeliver", redeliver, methods=["POST"])
    bp.add_url_rule("/<webhook_id>/test", "test_webhook", test_webhook, methods=["POST"])


# -- representation ----------------------------------------------------------------------------


def dump_attempt(attempt: Any) -> dict[str, Any]:
    """The JSON object of one attempt."""
    return {
        "id": attempt.id,
        "object": "attempt",
        "number": attempt.number,
        "started_at": ids.isoformat(attempt.started_at),
        "duration_ms": attempt.duration_ms,
        "status_code": attempt.status_code,
        "outcome": attempt.outcome,
        "error_type": attempt.error_type,
        "error_message": attempt.error_message,
        "response_headers": attempt.response_headers,
        "response_body": attempt.response_body,
        "next_retry_at": ids.isoformat(attempt.next_retry_at),
    }


def dump_delivery(row: Any, *, detail: bool = False) -> dict[str, Any]:
    """The JSON object of a delivery; ``detail`` adds the payload and every attempt."""
    out = {
        "id": row.id,
        "object": "delivery",
        "webhook_id": row.webhook_id,
        "event_id": row.event_id,
        "event_type": row.event.type,
        "status": row.status,
        "is_test": row.is_test,
        "attempt_count": row.attempt_count,
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "next_attempt_at": ids.isoformat(row.next_attempt_at),
        "created_at": ids.isoformat(row.created_at),
        "updated_at": ids.isoformat(row.updated_at),
        "completed_at": ids.isoformat(row.completed_at),
    }
    if detail:
        out["payload"] = row.event.payload
        out["attempts"] = [dump_attempt(a) for a in row.attempts]
    return out


def _delivery_or_404(webhook: Any, delivery_id: str) -> Any:
    found = None
    if DELIVERY_ID.match(delivery_id):
        found = get_state().db.session.get(get_state().models.Delivery, delivery_id)
    if found is None or found.webhook_id != webhook.id:
        shown = delivery_id if len(delivery_id) <= 64 else delivery_id[:64] + "…"
        raise APIError(404, f"No such delivery: {shown!r}.")
    return found


def _no_body_fields(body: dict[str, Any], allowed: tuple[str, ...] = ()) -> None:
    unknown = {k: ["unknown field"] for k in body if k not in allowed}
    if unknown:
        raise _invalid(ValidationError(unknown))


def sample_event_type(state: Any, webhook: Any, requested: Any) -> str:
    """The type of a sample event: ``requested`` (the body's ``event``), or when it is absent/null the
    webhook's first subscribed type still registered (else the first registered type); 400 on ``event``."""
    if requested is None:
        return next((e for e in webhook.events or [] if e in state.event_types), None) \
            or next(iter(state.event_types))
    if not isinstance(requested, str):
        raise _invalid(ValidationError({"event": ["must be a string naming an event type"]}))
    if requested not in state.event_types:
        raise _invalid(ValidationError(
            {"event": [f"unknown event type {requested[:64]!r}; known: {', '.join(sorted(state.event_types))}"]}))
    return requested


def sample_request(webhook_id: str) -> tuple[Any, Any, str]:
    """What ``/test`` and ``/preview`` read from their request: the state, the webhook (404 if not
    yours) and the sample's event type from the optional body ``{"event": ...}`` (400s)."""
    _query_params()
    state = get_state()
    webhook = _get_or_404(webhook_id)
    body = json_body(required=False)
    _no_body_fields(body, ("event",))
    return state, webhook, sample_event_type(state, webhook, body.get("event"))


def sample_payload(state: Any, webhook: Any, event_type: str, *, event_id: str, now: Any) -> dict[str, Any]:
    """The standard payload of a sample ``event_type`` for ``webhook`` (``meta.test: true``): what
    ``POST /webhooks/<id>/test`` sends and ``POST /webhooks/<id>/preview`` shows."""
    return events.build_payload(
        event_type, event_id=event_id, timestamp=now, brand={"id": webhook.brand_id, **events.SAMPLE_BRAND},
        data=events.sample_data(event_type), test=True, description=state.event_types.get(event_type),
    )


# -- routes ------------------------------------------------------------------------------------


def list_deliveries(webhook_id: str):
    """``GET /webhooks/<id>/deliveries``: newest first; ``status``, ``limit``, ``starting_after``."""
    params = _query_params(("limit", "starting_after", "status"))
    state = get_state()
    webhook = _get_or_404(webhook_id)
    limit = _parse_limit(params.get("limit"), state.settings.page_size, state.settings.max_page_size)
    D = state.models.Delivery
    query = sa.select(D).where(D.webhook_id == webhook.id).order_by(D.created_at.desc(), D.id.desc())
    status = params.get("status")
    if status is not None:
        if status not in DELIVERY_STATUSES:
            raise _invalid(ValidationError({"status": [f"must be one of {', '.join(DELIVERY_STATUSES)}"]}))
        query = query.where(D.status == status)
    if "starting_after" in params:
        cursor_id = params["starting_after"]
        cursor = state.db.session.get(D, cursor_id) if DELIVERY_ID.match(cursor_id) else None
        if cursor is None or cursor.webhook_id != webhook.id:
            raise _invalid(ValidationError({"starting_after": ["must be the id of a delivery of this webhook"]}))
        query = query.where(sa.or_(D.created_at < cursor.created_at,
                                   sa.and_(D.created_at == cursor.created_at, D.id < cursor.id)))
    rows = state.db.session.execute(query.limit(limit + 1)).scalars().all()
    return jsonify({
        "object": "list",
        "data": [dump_delivery(d) for d in rows[:limit]],
        "has_more": len(rows) > limit,
    })


def get_delivery(webhook_id: str, delivery_id: str):
    """``GET /webhooks/<id>/deliveries/<delivery_id>``: the delivery with its payload and every attempt."""
    _query_params()
    webhook = _get_or_404(webhook_id)
    return jsonify(dump_delivery(_delivery_or_404(webhook, delivery_id), detail=True))


def redeliver(webhook_id: str, delivery_id: str):
    """``POST .../redeliver``: 202 and a new delivery of the same event, sent by a worker."""
    _query_params()
    state = get_state()
    webhook = _get_or_404(webhook_id)
    original = _delivery_or_404(webhook, delivery_id)
    _no_body_fields(json_body(required=False))
    if original.is_test:
        raise APIError(409, "A test delivery cannot be redelivered: send a new one with POST /webhooks/<id>/test.")
    if not webhook.active:
        raise APIError(409, "The webhook is inactive: activate it (PATCH {\"active\": true}) before redelivering.")
    now = ids.utcnow()
    copy = state.models.Delivery(
        id=ids.new_id(ids.DELIVERY), event_id=original.event_id, webhook_id=webhook.id, status=PENDING,
        is_test=False, attempt_count=0, created_at=now, updated_at=now,
    )
    session = state.db.session
    session.add(copy)
    session.flush()
    outbox.track(state, session(), [copy.id])  # enqueued once this commit succeeds
    session.commit()
    response = jsonify(dump_delivery(copy, detail=True))
    response.status_code = 202
    return response


def test_webhook(webhook_id: str):
    """``POST /webhooks/<id>/test``: one immediate attempt of a sample event; 200 with its result."""
    state, webhook, event_type = sample_request(webhook_id)

    m = state.models
    session = state.db.session
    now = ids.utcnow()
    event_id = ids.new_id(ids.EVENT)
    payload = sample_payload(state, webhook, event_type, event_id=event_id, now=now)
    test = m.Delivery(
        id=ids.new_id(ids.DELIVERY), event_id=event_id, webhook_id=webhook.id, status=SENDING, is_test=True,
        attempt_count=1, claimed_at=now, created_at=now, updated_at=now,
    )
    session.add(m.Event(id=event_id, type=event_type, brand_id=webhook.brand_id, payload=payload, created_at=now))
    session.add(test)
    work = delivery.Work(delivery_id=test.id, attempt=1, event_id=event_id, event_type=event_type, payload=payload,
                         is_test=True, endpoint=delivery.endpoint_of(webhook, now))
    session.commit()
    result = delivery.attempt(state, work)
    session.expire_all()
    logged = session.get(m.Delivery, test.id)
    error = None
    if result.status != "succeeded":
        error = {"type": result.error_type or "http_error", "message": result.error_message}
    return jsonify({
        "object": "test_result",
        "success": result.status == "succeeded",
        "status_code": result.status_code,
        "duration_ms": result.duration_ms,
        "error": error,
        "delivery": dump_delivery(logged, detail=True),
    })
