"""Replay: redeliver what a webhook did not get, as new deliveries of the same events.

Same ``meta.event_id`` as the original, so a receiver's idempotency still holds. What is
chosen: events whose latest delivery to the webhook ``failed`` or was ``cancelled``, and
events ``missed`` while the webhook was inactive (no delivery to it at all).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from . import ids
from .models import CANCELLED, FAILED
from .rows import insert_deliveries
from .state import WebhooksState


@dataclass(frozen=True)
class Replayed:
    """One event redelivered by :func:`replay`."""

    delivery_id: str
    event_id: str
    event_type: str
    #: ``failed``, ``cancelled`` or ``missed``: why it was chosen.
    reason: str
    at: datetime


def replay(
    state: WebhooksState, webhook: Any, *, since: datetime, statuses: Sequence[str], limit: int
) -> tuple[list[Replayed], bool]:
    """New deliveries, in the session's transaction, of the events ``webhook`` did not get.

    * ``failed`` / ``cancelled``: events whose *latest* delivery to this webhook has that
      status and was made at or after ``since`` (an event since redelivered successfully, or
      with a delivery still open, is left alone);
    * ``missed``: events of the webhook's brand emitted at or after ``since`` (and after the
      webhook was created) with no delivery to it at all: emitted while it was inactive.

    Only event types the webhook subscribes to now; test events never. Oldest first, at most
    ``limit``; returns them and whether more match. The caller tracks the new deliveries
    with the outbox and commits.
    """
    events = [e for e in (webhook.events or []) if isinstance(e, str)]
    if not events:
        return [], False
    found: list[tuple[datetime, str, str, str]] = []  # (time, event id, type, reason)
    wanted = [s for s in statuses if s in (FAILED, CANCELLED)]
    if wanted:
        found += _latest_with_status(state, webhook, since, wanted, events, limit + 1)
    if "missed" in statuses:
        found += _missed(state, webhook, since, events, limit + 1)
    found.sort(key=lambda item: (ids.as_utc(item[0]), item[1]))
    chosen, more = found[:limit], len(found) > limit
    new_ids = insert_deliveries(state, [(event_id, webhook.id) for _, event_id, _, _ in chosen])
    out = [
        Replayed(delivery_id, event_id, event_type, reason, at)
        for delivery_id, (at, event_id, event_type, reason) in zip(new_ids, chosen, strict=True)
    ]
    return out, more


def _latest_with_status(
    state: WebhooksState, webhook: Any, since: datetime, statuses: list[str], events: list[str], limit: int
) -> list[tuple[datetime, str, str, str]]:
    m = state.models
    D, E = m.Delivery, m.Event
    later = aliased(D)
    newer_exists = sa.exists().where(
        later.webhook_id == D.webhook_id,
        later.event_id == D.event_id,
        sa.or_(later.created_at > D.created_at, sa.and_(later.created_at == D.created_at, later.id > D.id)),
    )
    rows = state.db.session.execute(
        sa.select(D.created_at, D.event_id, E.type, D.status)
        .join(E, E.id == D.event_id)
        .where(
            D.webhook_id == webhook.id,
            D.is_test.is_(False),
            D.status.in_(statuses),
            D.created_at >= since,
            E.type.in_(events),
            ~newer_exists,
        )
        .order_by(D.created_at, D.id)
        .limit(limit)
    ).all()
    return [(r.created_at, r.event_id, r.type, r.status) for r in rows]


def _missed(
    state: WebhooksState, webhook: Any, since: datetime, events: list[str], limit: int
) -> list[tuple[datetime, str, str, str]]:
    m = state.models
    D, E = m.Delivery, m.Event
    start = max(since, ids.as_utc(webhook.created_at))
    # No delivery to this webhook, and not a test event (whose one delivery is a test send).
    delivered = sa.exists().where(D.event_id == E.id, sa.or_(D.webhook_id == webhook.id, D.is_test.is_(True)))
    rows = state.db.session.execute(
        sa.select(E.created_at, E.id, E.type)
        .where(E.brand_id == webhook.brand_id, E.type.in_(events), E.created_at >= start, ~delivered)
        .order_by(E.created_at, E.id)
        .limit(limit)
    ).all()
    return [(r.created_at, r.id, r.type, "missed") for r in rows]
