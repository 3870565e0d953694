"""Retention: prune finished deliveries, their attempts and events, and old response bodies.

What goes, in this order, each in bounded batches (one short transaction per
``PRUNE_BATCH_SIZE`` rows, then a pause of ``PRUNE_PAUSE`` times as long, so ``emit`` and the
workers never wait long for a lock or the CPU):

1. deliveries in a final state (succeeded, failed, cancelled) that finished before the
   cutoff (``completed_at``), with their attempts; open deliveries are never touched;
2. events created before the cutoff that no delivery refers to any more (an event stays
   as long as any of its deliveries does);
3. the response body and headers of attempts that started before the body cutoff (the
   attempt's status, timing and error stay until its delivery goes).

Each step walks its index in key order (``completed_at``, ``created_at``, ``started_at``),
so rows that must stay are read once per run, never again batch after batch. The workers
prune every ``PRUNE_INTERVAL`` seconds, one at a time (:func:`prune_lock`).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from . import ids
from .models import FINISHED
from .state import WebhooksState

#: After each batch, a pause of this many times the time the batch took (at least
#: :data:`MIN_PAUSE` seconds), unless ``PRUNE_PAUSE`` says otherwise. On PostgreSQL a batch
#: locks only rows nobody else writes; what it takes from ``emit`` is CPU, so the prune works a
#: third of the time (emit p95 during a prune of 1,000,000 deliveries on 2 cores: 2.01x its
#: quiet value with a pause of 0.5, 1.51x with 2, 1.59x with 3: past 2 a longer pause no
#: longer helps). SQLite locks the whole database per write: every
#: emit that arrives during a batch waits for it, so batches must be rare for the slow tail to
#: stay short (busy 1/31 of the time).
PAUSE_BY_DATABASE = {"sqlite": 30.0}
DEFAULT_PAUSE = 2.0
MIN_PAUSE = 0.005
#: The longest pause: well inside the prune lock's shortest hold (60 s, renewed after each
#: batch), so a slow batch never lets another worker start a second prune.
MAX_PAUSE = 30.0

#: ``progress(step, rows)`` after each batch; ``step`` is a key of :class:`PruneCounts`.
Progress = Callable[[str, int], None]


@dataclass
class PruneCounts:
    """Rows a prune deleted (or would delete), and attempts whose bodies it dropped."""

    deliveries: int = 0
    attempts: int = 0
    events: int = 0
    bodies: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts by name."""
        return asdict(self)

    @property
    def rows(self) -> int:
        """Rows deleted or changed in all."""
        return self.deliveries + self.attempts + self.events + self.bodies


@dataclass(frozen=True)
class Batching:
    """Rows per batch, and the pause after each in multiples of the batch's time."""

    size: int
    pause: float


@dataclass(frozen=True)
class Cutoffs:
    """The moments before which rows (``rows``) and response bodies (``bodies``) go; ``None``: nothing."""

    rows: dt.datetime | None
    bodies: dt.datetime | None

    @classmethod
    def of(cls, state: WebhooksState, older_than: float | None = None, now: dt.datetime | None = None) -> Cutoffs:
        """The cutoffs of the app's settings, or of ``older_than`` seconds (rows and bodies alike)."""
        now = now or ids.utcnow()
        settings = state.settings
        rows = settings.retention if older_than is None else older_than
        bodies = settings.body_retention if older_than is None else older_than
        if rows is not None and bodies is not None:
            bodies = min(bodies, rows)
        return cls(
            rows=None if rows is None else now - dt.timedelta(seconds=rows),
            bodies=None if bodies is None else now - dt.timedelta(seconds=bodies),
        )


def _tables(state: WebhooksState) -> tuple[sa.Table, sa.Table, sa.Table]:
    m = state.models
    return m.Event.__table__, m.Delivery.__table__, m.Attempt.__table__


def _bodies_present(attempts: sa.Table) -> sa.ColumnElement[bool]:
    # The partial index's own clause (models.BODIES_PRESENT), so both databases use it.
    return sa.or_(attempts.c.response_body.is_not(None), attempts.c.response_headers.is_not(None))


def pause_ratio(state: WebhooksState) -> float:
    """The pause after each batch, in multiples of the batch's time: ``PRUNE_PAUSE``, or by database."""
    configured = state.settings.prune_pause
    if configured is not None:
        return float(configured)
    return PAUSE_BY_DATABASE.get(state.db.engine.dialect.name, DEFAULT_PAUSE)


def plan(state: WebhooksState, cutoffs: Cutoffs) -> PruneCounts:
    """What :func:`prune` would do now with ``cutoffs`` (counts only: nothing changes)."""
    events, deliveries, attempts = _tables(state)
    counts = PruneCounts()
    with state.db.engine.connect() as connection:
        if cutoffs.rows is not None:
            gone = sa.and_(deliveries.c.completed_at < cutoffs.rows, deliveries.c.status.in_(FINISHED))
            counts.deliveries = connection.scalar(sa.select(sa.func.count()).where(gone)) or 0
            counts.attempts = (
                connection.scalar(
                    sa.select(sa.func.count())
                    .select_from(attempts.join(deliveries, attempts.c.delivery_id == deliveries.c.id))
                    .where(gone)
                )
                or 0
            )
            kept = sa.select(deliveries.c.id).where(deliveries.c.event_id == events.c.id, sa.not_(gone))
            counts.events = (
                connection.scalar(
                    sa.select(sa.func.count()).where(events.c.created_at < cutoffs.rows, ~sa.exists(kept))
                )
                or 0
            )
        if cutoffs.bodies is not None:
            query = sa.select(sa.func.count()).where(attempts.c.started_at < cutoffs.bodies, _bodies_present(attempts))
            if cutoffs.rows is not None:
                staying = sa.select(deliveries.c.id).where(
                    deliveries.c.id == attempts.c.delivery_id,
                    deliveries.c.completed_at < cutoffs.rows,
                    deliveries.c.status.in_(FINISHED),
                )
                query = query.where(~sa.exists(staying))
            counts.bodies = connection.scalar(query) or 0
    return counts


def prune(
    state: WebhooksState,
    cutoffs: Cutoffs,
    *,
    batch_size: int | None = None,
    pause: float | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PruneCounts:
    """Delete what ``cutoffs`` say has expired, in batches; return what went.

    ``batch_size`` rows per transaction (default ``PRUNE_BATCH_SIZE``); after each, a pause of
    ``pause`` times its duration (default :func:`pause_ratio`). ``should_stop`` is asked
    between batches (a worker shutting down stops there; what was deleted stays deleted, the
    rest waits for the next run).
    """
    batching = Batching(batch_size or state.settings.prune_batch_size, pause_ratio(state) if pause is None else pause)
    counts = PruneCounts()
    stop = should_stop or (lambda: False)

    def report(step: str, rows: int) -> None:
        setattr(counts, step, getattr(counts, step) + rows)
        if progress is not None:
            progress(step, rows)

    if cutoffs.rows is not None:
        _prune_deliveries(state, cutoffs.rows, batching, report, stop)
        if not stop():
            _prune_events(state, cutoffs.rows, batching, report, stop)
    if cutoffs.bodies is not None and not stop():
        _drop_bodies(state, cutoffs.bodies, batching, report, stop)
    return counts


def _batches(
    state: WebhooksState,
    table: sa.Table,
    key: sa.Column[Any],
    where: list[sa.ColumnElement[bool]],
    batching: Batching,
    stop: Callable[[], bool],
    act: Callable[[sa.Connection, list[Any]], None],
    extra: tuple[sa.Column[Any], ...] = (),
) -> None:
    """Select up to ``batching.size`` rows ``(id, key, *extra)`` matching ``where`` in ``(key, id)`` order
    after the last batch's, and ``act`` on them in the same transaction; pause between batches."""
    size = batching.size
    last: tuple[Any, str] | None = None
    while not stop():
        query = sa.select(table.c.id, key, *extra).where(*where).order_by(key, table.c.id).limit(size)
        if last is not None:
            # A row value: both databases walk the (key, id) index from there.
            query = query.where(key >= last[0], sa.tuple_(key, table.c.id) > sa.tuple_(*last))
        started = time.monotonic()
        with state.db.engine.begin() as connection:
            rows = connection.execute(query).all()
            if rows:
                act(connection, list(rows))
        if len(rows) < size:
            return
        last = (rows[-1][1], rows[-1][0])
        time.sleep(min(MAX_PAUSE, max(MIN_PAUSE, (time.monotonic() - started) * batching.pause)))


def _prune_deliveries(
    state: WebhooksState, cutoff: dt.datetime, batching: Batching, report: Progress, stop: Callable[[], bool]
) -> None:
    _, deliveries, attempts = _tables(state)

    def act(connection: sa.Connection, rows: list[Any]) -> None:
        # Only final states (an open delivery has no completed_at; one that has is skipped). A
        # final state is final (a redelivery is a new row), so the status read here holds.
        batch = [r[0] for r in rows if r[2] in FINISHED]
        if not batch:
            return
        gone = connection.execute(sa.delete(attempts).where(attempts.c.delivery_id.in_(batch))).rowcount
        report("attempts", gone)
        gone = connection.execute(
            sa.delete(deliveries).where(deliveries.c.id.in_(batch), deliveries.c.status.in_(FINISHED))
        ).rowcount
        report("deliveries", gone)

    # The status is checked on the rows read, not in the WHERE: SQLite would pick the status
    # index and sort every final delivery, instead of walking completed_at.
    where = [deliveries.c.completed_at < cutoff]
    _batches(state, deliveries, deliveries.c.completed_at, where, batching, stop, act, (deliveries.c.status,))


def _prune_events(
    state: WebhooksState, cutoff: dt.datetime, batching: Batching, report: Progress, stop: Callable[[], bool]
) -> None:
    events, deliveries, _ = _tables(state)
    unreferenced = ~sa.exists(sa.select(deliveries.c.id).where(deliveries.c.event_id == events.c.id))

    def act(connection: sa.Connection, rows: list[Any]) -> None:
        batch = [r[0] for r in rows]
        # Whether an event is still referenced is decided here, per id, through the event_id
        # index; a redelivery that has just given one a new delivery keeps it.
        report("events", connection.execute(sa.delete(events).where(events.c.id.in_(batch), unreferenced)).rowcount)

    # The walk reads the created_at index alone. With the NOT EXISTS in the walk, PostgreSQL,
    # whose statistics still counted the deliveries just deleted, chose a parallel hash anti
    # join over the whole deliveries table for every batch: 219 ms and both cores per batch at
    # 333,334 deliveries, instead of 10 ms (docs/retention.md).
    _batches(state, events, events.c.created_at, [events.c.created_at < cutoff], batching, stop, act)


def _drop_bodies(
    state: WebhooksState, cutoff: dt.datetime, batching: Batching, report: Progress, stop: Callable[[], bool]
) -> None:
    _, _, attempts = _tables(state)

    def act(connection: sa.Connection, rows: list[Any]) -> None:
        batch = [r[0] for r in rows]
        # sa.null(): a JSON column would otherwise store the JSON text 'null', not SQL NULL.
        changed = connection.execute(
            sa.update(attempts).where(attempts.c.id.in_(batch)).values(response_body=None, response_headers=sa.null())
        ).rowcount
        report("bodies", changed)

    where = [attempts.c.started_at < cutoff, _bodies_present(attempts)]
    _batches(state, attempts, attempts.c.started_at, where, batching, stop, act)


def prune_lock_key(state: WebhooksState) -> str:
    """The Redis key that lets one worker at a time prune, once per interval."""
    return f"trakkr_webhooks:{state.settings.queue}:prune-lock"


def prune_lock(state: WebhooksState, ttl: float) -> str | None:
    """Take the queue's prune lock for ``ttl`` seconds; its token, or ``None`` if another holds it.

    The lock outlives the prune: it expires ``ttl`` after it was last held, so the next
    scheduled prune, by whichever worker, comes an interval later.
    """
    token = f"{os.getpid()}:{time.time()}"
    taken = state.redis().set(prune_lock_key(state), token, nx=True, px=max(1000, int(ttl * 1000)))
    return token if taken else None


def hold_prune_lock(state: WebhooksState, token: str, ttl: float) -> bool:
    """Extend the prune lock while a prune runs; ``False`` if it is no longer ours."""
    key = prune_lock_key(state)
    connection = state.redis()
    if connection.get(key) != token.encode():
        return False
    return bool(connection.pexpire(key, max(1000, int(ttl * 1000))))
