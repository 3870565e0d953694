"""``emit``: the transactional outbox.

An event and one delivery row per matching webhook are written in the host's current
``db.session`` transaction; the jobs are enqueued only after that transaction commits.

Cost of one ``emit`` (fan-out to N webhooks): one SELECT of the brand's active webhooks,
one INSERT of the event, one bulk INSERT of the N deliveries (``executemany``, no ORM
objects), and after the commit one pipelined Redis round trip plus one UPDATE marking
them ``queued``. That UPDATE runs in a short transaction of its own on the connection the
session committed on, which the session still holds at that point, so an emit checks out
one pooled connection, not two (a second checkout per commit overflowed the pool under load).

Transaction rules, with SQLAlchemy session events:

* delivery ids are remembered in ``session.info`` with the (sub)transaction that wrote them;
* a savepoint that is released hands its ids to its parent; one that rolls back drops them;
* the outermost commit enqueues everything left; a rollback or close drops it all;
* if Redis is down at commit, a warning is logged and the rows stay ``pending`` (the
  sweep and ``flask webhooks dispatch`` enqueue them later). Nothing is raised into
  the host's commit.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from . import dispatch, events, ids, metrics, tracing
from .rows import insert_deliveries
from .rules import canonical_uuid
from .state import WebhooksState

log = logging.getLogger("flask_trakkr_webhooks")

_INFO_KEY = "trakkr_webhooks.outbox"
#: After a failed enqueue, commits skip Redis this long (the sweep catches up), so a host
#: whose Redis is unreachable is not slowed by a connect timeout on every commit.
REDIS_BACKOFF_SECONDS = 5.0

_listening: weakref.WeakSet[Any] = weakref.WeakSet()


class _Outbox:
    """Delivery ids written by this session, per open (sub)transaction."""

    def __init__(self, state: WebhooksState) -> None:
        self.state = state
        self.by_transaction: dict[Any, list[str]] = {}
        # The connection the deliveries were written on: marked queued on it after the commit.
        self.connection: sa.Connection | None = None


def emit(
    state: WebhooksState,
    event_type: str,
    *,
    brand: Mapping[str, Any],
    data: Mapping[str, Any],
    workflow: Mapping[str, Any] | None = None,
    summary: str | None = None,
) -> str:
    """Write the event and its deliveries in the current transaction; return the ``evt_`` id.

    Raises ``ValueError`` for an unknown event type (naming the known ones), a brand
    without an id, data that is not JSON or a payload over ``MAX_PAYLOAD_BYTES``;
    ``TypeError`` for arguments of the wrong type. Nothing is written when it raises.
    """
    if not tracing.AVAILABLE:
        return _emit(state, event_type, brand=brand, data=data, workflow=workflow, summary=summary)
    span = tracing.start(tracing.EMIT_SPAN, {"trakkr_webhooks.event_type": str(event_type)})
    error = None
    try:
        return _emit(state, event_type, brand=brand, data=data, workflow=workflow, summary=summary, span=span)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        tracing.finish(span, {}, error)


def _emit(
    state: WebhooksState,
    event_type: str,
    *,
    brand: Mapping[str, Any],
    data: Mapping[str, Any],
    workflow: Mapping[str, Any] | None,
    summary: str | None,
    span: Any = None,
) -> str:
    known = state.event_types
    if not isinstance(event_type, str):
        raise TypeError(f"event_type must be a string, not {type(event_type).__name__}")
    if event_type not in known:
        raise ValueError(f"unknown event type {event_type!r}; known event types: {', '.join(sorted(known))}")

    models = state.models
    event_id = ids.new_id(ids.EVENT)
    now = ids.utcnow()
    payload = events.build_payload(
        event_type,
        event_id=event_id,
        timestamp=now,
        brand=brand,
        data=data,
        workflow=workflow,
        summary=summary,
        description=known.get(event_type),
        spec=known.spec(event_type),
        max_depth=state.settings.max_payload_depth,
    )
    size = len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    limit = state.settings.max_payload_bytes
    if size > limit:
        raise ValueError(
            f"event payload is {size} bytes, over the limit of {limit} bytes (TRAKKR_WEBHOOKS_MAX_PAYLOAD_BYTES)"
        )

    session = state.db.session
    W = models.Webhook
    # The API stores brand ids as lower-case hyphenated UUIDs; the host may emit any
    # spelling of the same UUID ("3F2B…", no hyphens). The payload keeps the host's.
    brand_id = canonical_uuid(payload["brand"]["id"]) or payload["brand"]["id"]
    rows = session.execute(
        sa.select(W.id, W.events).where(W.brand_id == brand_id, W.active.is_(True), W.deleted_at.is_(None))
    ).all()
    # JSON containment is not portable (SQLite), and the brand's rows are few: filter here.
    webhook_ids = [row.id for row in rows if isinstance(row.events, list) and event_type in row.events]

    # Core INSERTs in the session's transaction: no ORM bookkeeping per row, and the
    # deliveries go out as one executemany (psycopg pipelines it) whatever the fan-out.
    session.execute(
        sa.insert(models.Event.__table__),
        [dict(id=event_id, type=event_type, brand_id=brand_id, payload=payload, created_at=now)],
    )
    traced: dict[str, Any] = {}
    if span is not None:
        span.set_attributes({"trakkr_webhooks.event_id": event_id, "trakkr_webhooks.deliveries": len(webhook_ids)})
        traced = {"trace_context": tracing.traceparent(span)}
    delivery_ids = insert_deliveries(state, [(event_id, webhook_id) for webhook_id in webhook_ids], now=now, **traced)
    if delivery_ids:
        track(state, session(), delivery_ids)
    if state.settings.metrics:
        metrics.emitted(event_type)
    return event_id


# -- after-commit enqueueing ----------------------------------------------------------


def track(state: WebhooksState, session: sa.orm.Session, delivery_ids: list[str]) -> None:
    """Enqueue ``delivery_ids`` when the current transaction of ``session`` commits."""
    _listen(session)
    outbox = session.info.get(_INFO_KEY)
    if outbox is None:
        outbox = session.info[_INFO_KEY] = _Outbox(state)
    transaction = session.get_nested_transaction() or session.get_transaction()
    outbox.by_transaction.setdefault(transaction, []).extend(delivery_ids)
    # The connection already holds this transaction: asking for it checks nothing out.
    outbox.connection = session.connection(bind_arguments={"mapper": state.models.Delivery})


def _listen(session: sa.orm.Session) -> None:
    # Listen on the session's class (Flask-SQLAlchemy's sessionmaker makes one per db),
    # once; the handlers do nothing for sessions that never emitted.
    cls = type(session)
    if cls in _listening:
        return
    sa.event.listen(cls, "after_commit", _after_commit)
    sa.event.listen(cls, "after_transaction_end", _after_transaction_end)
    _listening.add(cls)


def _after_commit(session: sa.orm.Session) -> None:
    outbox: _Outbox | None = session.info.get(_INFO_KEY)
    if outbox is None or not outbox.by_transaction:
        return
    nested = session.get_nested_transaction()
    if nested is not None:
        # A savepoint was released: its rows now belong to the enclosing transaction.
        moved = outbox.by_transaction.pop(nested, None)
        if moved:
            outbox.by_transaction.setdefault(nested.parent, []).extend(moved)
        return
    delivery_ids = [i for batch in outbox.by_transaction.values() for i in batch]
    outbox.by_transaction.clear()
    connection, outbox.connection = outbox.connection, None
    enqueue_committed(outbox.state, delivery_ids, connection=connection)


def _after_transaction_end(session: sa.orm.Session, transaction: Any) -> None:
    # Whatever is still attached to an ending transaction was rolled back (commits
    # moved or sent their ids in after_commit, which runs first).
    outbox: _Outbox | None = session.info.get(_INFO_KEY)
    if outbox is None:
        return
    outbox.by_transaction.pop(transaction, None)
    if transaction.parent is None:
        outbox.by_transaction.clear()
        outbox.connection = None


def enqueue_committed(
    state: WebhooksState, delivery_ids: list[str], *, connection: sa.Connection | None = None
) -> bool:
    """Enqueue committed deliveries and mark them ``queued``; never raises.

    ``connection`` is the connection they were committed on, still checked out (the session's,
    during ``after_commit``): the mark runs there in a short transaction of its own, so no
    second pooled connection is taken. Without one (or one still inside a transaction, e.g. a
    session joined to an outer transaction) :func:`.dispatch.mark_queued` takes its own.
    Returns False when they were left ``pending`` for the sweep (Redis unreachable).
    """
    if not delivery_ids:
        return True
    if time.monotonic() < state.local.redis_down_until:
        log.warning("trakkr_webhooks: Redis recently unreachable; %d deliveries left pending", len(delivery_ids))
        return False
    try:
        dispatch.enqueue(state, delivery_ids)
    except Exception as exc:  # any Redis failure: the rows stay pending, the host's commit stands
        state.local.redis_down_until = time.monotonic() + REDIS_BACKOFF_SECONDS
        log.warning(
            "trakkr_webhooks: could not enqueue %d deliveries (%s: %s); they stay pending until "
            "the sweep or `flask webhooks dispatch` enqueues them",
            len(delivery_ids),
            type(exc).__name__,
            exc,
        )
        return False
    state.local.redis_down_until = 0.0
    try:
        if connection is not None and not connection.closed and not connection.in_transaction():
            dispatch.mark_queued(state, delivery_ids, connection=connection)
        else:
            dispatch.mark_queued(state, delivery_ids)
    except Exception:  # cosmetic: a worker claims pending and queued rows alike
        log.warning("trakkr_webhooks: could not mark %d deliveries queued", len(delivery_ids), exc_info=True)
    return True
