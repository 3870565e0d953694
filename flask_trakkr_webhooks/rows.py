"""Delivery rows: the one place they are created, and the one place open ones are cancelled.

``emit`` (:mod:`.outbox`), replay (:mod:`.replay`), redelivery and test sends
(:mod:`.api.deliveries`) all create deliveries with :func:`insert_deliveries`; a webhook
disabled by :mod:`.health` or deleted through the API has its open deliveries cancelled
with :func:`cancel_open`. Both write in the caller's transaction (the caller commits).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa

from . import ids, metrics
from .models import CANCELLABLE, CANCELLED, PENDING
from .state import WebhooksState

#: Longest ``last_error`` a cancellation writes.
MAX_REASON_CHARS = 1000


def insert_deliveries(
    state: WebhooksState,
    pairs: Sequence[tuple[str, str]],
    *,
    now: datetime | None = None,
    status: str = PENDING,
    is_test: bool = False,
    **columns: Any,
) -> list[str]:
    """New deliveries of ``(event_id, webhook_id)`` pairs; return their ids, in order.

    One ``executemany`` (no ORM objects) whatever the count. ``status``, ``is_test`` and
    further ``columns`` (e.g. ``attempt_count``, ``claimed_at`` of a test send) are the same
    for every row. The caller commits, and tracks the ids with :func:`outbox.track` when a
    worker should send them.
    """
    if not pairs:
        return []
    now = now or ids.utcnow()
    delivery_ids = [ids.new_id(ids.DELIVERY) for _ in pairs]
    values = {"attempt_count": 0, **columns}
    state.db.session.execute(
        sa.insert(state.models.Delivery.__table__),
        [
            dict(
                id=delivery_id,
                event_id=event_id,
                webhook_id=webhook_id,
                status=status,
                is_test=is_test,
                created_at=now,
                updated_at=now,
                **values,
            )
            for delivery_id, (event_id, webhook_id) in zip(delivery_ids, pairs, strict=True)
        ],
    )
    return delivery_ids


def cancel_open(state: WebhooksState, webhook_id: str, reason: str, *, now: datetime | None = None) -> int:
    """Cancel the webhook's open deliveries (``pending``, ``queued``, ``retrying``); return how many.

    One already ``sending`` finishes its attempt; a worker claiming a cancelled one skips it.
    """
    now = now or ids.utcnow()
    table = state.models.Delivery.__table__
    if state.settings.metrics:
        _count_cancelled(state, sa.and_(table.c.webhook_id == webhook_id, table.c.status.in_(CANCELLABLE)))
    done = cast(
        "sa.CursorResult[Any]",  # an UPDATE answers with a CursorResult (rowcount)
        state.db.session.execute(
            table.update()
            .where(table.c.webhook_id == webhook_id, table.c.status.in_(CANCELLABLE))
            .values(
                status=CANCELLED,
                next_attempt_at=None,
                completed_at=now,
                updated_at=now,
                last_error=f"cancelled: {reason}"[:MAX_REASON_CHARS],
            )
        ),
    )
    return int(done.rowcount or 0)


def _count_cancelled(state: WebhooksState, where: Any) -> None:
    """Count the deliveries ``where`` selects as cancelled, by event type and provider (one query)."""
    m = state.models
    D, E, W = m.Delivery.__table__, m.Event.__table__, m.Webhook.__table__
    rows = state.db.session.execute(
        sa.select(E.c.type, W.c.provider, sa.func.count())
        .select_from(D.join(E, E.c.id == D.c.event_id).join(W, W.c.id == D.c.webhook_id))
        .where(where, D.c.is_test.is_(False))
        .group_by(E.c.type, W.c.provider)
    ).all()
    for event_type, provider, count in rows:
        metrics.finished(event_type, provider, "cancelled", int(count))
