"""Getting deliveries into RQ: pipelined enqueueing, de-duplication and the sweep.

* :func:`enqueue` puts N deliveries on the queue in **one** Redis round trip: jobs of
  up to ``BATCH_SIZE`` delivery ids each (``enqueue_many`` on a pipeline) plus one
  ``HSET`` recording which job holds each delivery.
* That hash (``trakkr_webhooks:<queue>:jobs``, delivery id -> RQ job id) is the de-duplication
  record: a worker removes its ids when it claims them, and the sweep only re-enqueues a
  delivery whose recorded job is gone, so a delivery is never in the queue twice.
  (Sending twice at once is separately impossible: the claim is a conditional UPDATE.)
* :func:`schedule_retry` hands a retry to RQ's scheduler (``enqueue_at``).
* :func:`sweep` finds deliveries nobody will deliver (Redis was down at commit, a job was
  lost, a worker died mid-attempt, the scheduler lost a retry) and enqueues them again.
  ``flask webhooks dispatch`` runs it once; the worker runs it every ``SWEEP_INTERVAL``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.utils import utcparse
from rq.worker import Worker

from . import ids
from .config import Settings
from .models import PENDING, QUEUED, RETRYING, SENDING
from .state import WebhooksState

if TYPE_CHECKING:  # pragma: no cover
    from redis.typing import EncodableT

log = logging.getLogger("flask_trakkr_webhooks")

#: The RQ job function: a batch of delivery ids (:func:`flask_trakkr_webhooks.jobs.run_batch`;
#: a string, so enqueueing imports nothing of the worker side).
JOB_FUNC = "flask_trakkr_webhooks.jobs.run_batch"
#: RQ job statuses under which a job will still run.
LIVE_JOB_STATUSES = frozenset({"queued", "scheduled", "started", "deferred", "created"})
#: Keep a failed job's traceback in RQ this long (a failed *job* is a bug, not an endpoint failure).
FAILED_JOB_TTL = 24 * 3600
#: Redis key prefix of RQ's worker registrations (a worker's key expires once it stops heartbeating).
WORKER_KEY_PREFIX = Worker.redis_worker_namespace_prefix
#: Most deliveries one sweep looks at (the next sweep takes the rest, from its cursor).
SWEEP_LIMIT = 5000


# -- jobs ---------------------------------------------------------------------------


def job_timeout(settings: Settings) -> int:
    """RQ timeout of one batch job: every delivery to one host, in waves of the per-host cap."""
    waves = math.ceil(settings.batch_size / max(1, min(settings.per_host_concurrency, settings.concurrency)))
    return int(waves * settings.timeout + 60)


# -- enqueueing -----------------------------------------------------------------------


def chunks(items: Sequence[str], size: int) -> list[list[str]]:
    """``items`` cut into lists of at most ``size``."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _job_options(state: WebhooksState, batch: list[str]) -> dict[str, Any]:
    return {
        "timeout": job_timeout(state.settings),
        "result_ttl": 0,  # nothing to keep: the outcome is in the database
        "failure_ttl": FAILED_JOB_TTL,
        "description": f"trakkr webhooks: deliver {len(batch)}",
    }


def enqueue(state: WebhooksState, delivery_ids: Iterable[str]) -> list[str]:
    """Enqueue ``delivery_ids`` in one pipelined round trip; return the job ids.

    Raises what Redis raises (the caller decides whether that is fatal).
    """
    delivery_ids = list(dict.fromkeys(delivery_ids))
    if not delivery_ids:
        return []
    queue = state.queue()
    datas = []
    mapping: dict[EncodableT, EncodableT] = {}
    for batch in chunks(delivery_ids, state.settings.batch_size):
        job_id = uuid.uuid4().hex
        datas.append(Queue.prepare_data(JOB_FUNC, args=(batch,), job_id=job_id, **_job_options(state, batch)))
        mapping.update(dict.fromkeys(batch, job_id))
    with queue.connection.pipeline(transaction=False) as pipe:
        pipe.hset(state.jobs_key, mapping=mapping)
        queue.enqueue_many(datas, pipeline=pipe)
        pipe.execute()
    return [d.job_id for d in datas]


def schedule_retries(state: WebhooksState, retries: Sequence[tuple[str, datetime]]) -> list[str]:
    """Have RQ's scheduler enqueue a job per ``(delivery_id, at)`` at its time; one round trip.

    Returns the job ids.
    """
    queue = state.queue()
    registry_key = ScheduledJobRegistry(queue=queue).key  # type: ignore[no-untyped-call]  # unannotated in rq
    job_ids = []
    with queue.connection.pipeline(transaction=False) as pipe:
        for delivery_id, at in retries:
            job_id = uuid.uuid4().hex
            options = _job_options(state, [delivery_id])
            options["job_timeout"] = options.pop("timeout")  # enqueue_at's name for it
            pipe.hset(state.jobs_key, delivery_id, job_id)
            queue.enqueue_at(at, JOB_FUNC, [delivery_id], job_id=job_id, pipeline=pipe, **options)
            # RQ scores scheduled jobs in whole seconds (rounded down: up to 1 s early); the
            # exact time makes them never early, and precise under our worker's scheduler.
            pipe.zadd(registry_key, {job_id: at.timestamp()})
            job_ids.append(job_id)
        pipe.execute()
    return job_ids


def schedule_retry(state: WebhooksState, delivery_id: str, at: datetime) -> str:
    """Have RQ's scheduler enqueue a job for ``delivery_id`` at ``at``; return its job id."""
    return schedule_retries(state, [(delivery_id, at)])[0]


def forget(state: WebhooksState, delivery_ids: Sequence[str]) -> None:
    """Drop the de-duplication records of claimed deliveries (they are no longer queued)."""
    if delivery_ids:
        state.redis().hdel(state.jobs_key, *delivery_ids)


def mark_queued(
    state: WebhooksState,
    delivery_ids: Sequence[str],
    *,
    from_statuses: Sequence[str] = (PENDING,),
    connection: sa.Connection | None = None,
) -> None:
    """Record ``queued`` for enqueued deliveries still in ``from_statuses``.

    Conditional, so a delivery a worker claimed in the meantime keeps its newer state. On
    ``connection`` (in a transaction of its own) when given: ``emit`` passes the session's
    connection, so marking takes no second connection from the pool.
    """
    if not delivery_ids:
        return
    table = state.models.Delivery.__table__
    now = ids.utcnow()
    # Rows are found by primary key; the status is only checked on them. Written as
    # ``status || ''`` so no planner takes the status index instead: right after a large
    # fan-out it holds every new `pending` row (and their dead versions until vacuum),
    # and scanning all of them once per chunk made emit quadratic in the fan-out.
    status = table.c.status.concat("")

    def update(conn: sa.Connection) -> None:
        for batch in chunks(list(delivery_ids), 500):
            conn.execute(
                table.update()
                .where(table.c.id.in_(batch), status.in_(from_statuses))
                .values(status=QUEUED, enqueued_at=now, updated_at=now)
            )

    if connection is None:
        with state.db.engine.begin() as conn:
            update(conn)
    else:
        with connection.begin():
            update(connection)


# -- the sweep ------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepCursor:
    """Where a sweep that hit :data:`SWEEP_LIMIT` stopped: the next one starts past it.

    ``phase`` is ``"claimed"`` (stuck claims and overdue retries, read first) or
    ``"unclaimed"`` (pending and queued rows); ``key`` is the last ``(created_at, id)`` read.
    Without it, a backlog of more than the limit of still-queued rows would hide every
    forgotten delivery behind them from every sweep.
    """

    phase: str
    key: tuple[datetime, str]


@dataclass
class SweepResult:
    """What one sweep found and did (counts by reason, the ids it enqueued, where to go on)."""

    pending: int = 0
    lost_jobs: int = 0
    stuck: int = 0
    overdue_retries: int = 0
    enqueued: list[str] = field(default_factory=list)
    #: Set when the sweep read :data:`SWEEP_LIMIT` rows: pass it as ``after`` to read on.
    next: SweepCursor | None = None

    def add(self, other: SweepResult) -> None:
        """Add ``other``'s counts and ids to this result (``flask webhooks dispatch`` sums its pages)."""
        self.pending += other.pending
        self.lost_jobs += other.lost_jobs
        self.stuck += other.stuck
        self.overdue_retries += other.overdue_retries
        self.enqueued += other.enqueued

    def as_dict(self) -> dict[str, int]:
        """Counts for logs and the CLI."""
        return {
            "pending": self.pending,
            "lost_jobs": self.lost_jobs,
            "stuck": self.stuck,
            "overdue_retries": self.overdue_retries,
            "enqueued": len(self.enqueued),
        }


def sweep_margin(settings: Settings) -> float:
    """Seconds a delivery may look forgotten before the periodic sweep acts (min(30, STUCK_AFTER))."""
    return float(min(30.0, settings.stuck_after))


def sweep(
    state: WebhooksState,
    *,
    pending_grace: float | None = None,
    now: datetime | None = None,
    after: SweepCursor | None = None,
) -> SweepResult:
    """Re-enqueue every open delivery that no job will deliver; needs an app context.

    * ``pending``/``queued`` older than ``pending_grace`` (default :func:`sweep_margin`)
      whose recorded job is gone: Redis was down at commit, or the job was lost;
    * ``sending`` claimed more than ``STUCK_AFTER`` seconds ago: the worker died;
    * ``retrying`` overdue by more than the margin: the scheduler lost it (a
      still-scheduled job is removed from the schedule first, so it cannot run twice).

    A job RQ marked ``started`` counts as lost when its worker is gone (its worker key
    expired) or it started more than ``STUCK_AFTER`` seconds ago while its deliveries are
    still unclaimed: a job claims its batch first thing, so its worker died before the
    claim committed (re-enqueueing is safe: the claim is atomic). So every open delivery is
    re-enqueued at most ``STUCK_AFTER + SWEEP_INTERVAL`` after its worker died, whatever
    its state.

    The counts are exact: the rows are read again after Redis, and a delivery a worker
    claimed or recorded in between (its status or ``updated_at`` changed) is left alone.

    At most :data:`SWEEP_LIMIT` rows are read; when that many were, ``result.next`` says
    where to go on (``after=``). Stuck claims are always read from the start unless the
    cursor is within them, so they are never starved by a long walk through queued rows.
    """
    settings = state.settings
    now = now or ids.utcnow()
    margin = sweep_margin(settings)
    grace = margin if pending_grace is None else pending_grace
    D = state.models.Delivery
    session = state.db.session
    columns = (D.id, D.status, D.updated_at)
    order = (D.created_at, D.id)

    def page(condition: Any, past: tuple[datetime, str] | None, limit: int) -> list[Any]:
        query = sa.select(*columns, D.created_at).where(D.is_test.is_(False), condition)
        if past is not None:
            query = query.where(sa.tuple_(*order) > sa.tuple_(*past))
        return list(session.execute(query.order_by(*order).limit(limit)).all())

    # Stuck claims and overdue retries first, then unclaimed rows: under a backlog, thousands of
    # old `queued` rows whose jobs are still waiting must not crowd them out of the limit.
    claimed = sa.or_(
        sa.and_(D.status == SENDING, D.claimed_at <= now - timedelta(seconds=settings.stuck_after)),
        sa.and_(D.status == RETRYING, D.next_attempt_at <= now - timedelta(seconds=margin)),
    )
    unclaimed = sa.and_(D.status.in_((PENDING, QUEUED)), D.updated_at <= now - timedelta(seconds=grace))
    in_claimed = after is not None and after.phase == "claimed"
    rows = page(claimed, after.key if after is not None and in_claimed else None, SWEEP_LIMIT)
    next_cursor = SweepCursor("claimed", (rows[-1].created_at, rows[-1].id)) if len(rows) == SWEEP_LIMIT else None
    if next_cursor is None:
        room = SWEEP_LIMIT - len(rows)
        more = page(unclaimed, after.key if after is not None and not in_claimed else None, room)
        rows += more
        if len(more) == room:
            next_cursor = SweepCursor("unclaimed", (more[-1].created_at, more[-1].id))
    session.rollback()  # end the read transaction; nothing was written
    result = SweepResult(next=next_cursor)
    if not rows:
        return result

    conn = state.redis()
    key = state.jobs_key
    job_ids = cast("list[bytes | None]", conn.hmget(key, [r.id for r in rows]))  # no decode_responses: bytes
    statuses = _job_statuses(conn, job_ids, now, settings.stuck_after)

    todo: list[str] = []
    for row, status in zip(rows, statuses, strict=True):
        live = status in LIVE_JOB_STATUSES
        if row.status == SENDING:
            if status == "queued":  # an earlier sweep already re-enqueued it
                continue
        elif row.status == RETRYING:
            if live and status != "scheduled":
                continue
        else:
            if live:
                continue
        todo.append(row.id)
    # Read the rows again: one a worker claimed or recorded while Redis was read (its
    # de-duplication record then disappears, its job ends) is not forgotten.
    unchanged = _unchanged(state, rows, todo)
    todo = [row.id for row in rows if row.id in unchanged]
    for row in rows:
        if row.id not in unchanged:
            continue
        if row.status == SENDING:
            result.stuck += 1
        elif row.status == RETRYING:
            result.overdue_retries += 1
        elif row.status == PENDING:
            result.pending += 1
        else:
            result.lost_jobs += 1
    unschedule = [job_id for job_id, row_id in unschedule_of(rows, job_ids, statuses) if row_id in unchanged]

    if unschedule:
        registry = ScheduledJobRegistry(queue=state.queue())  # type: ignore[no-untyped-call]  # unannotated in rq
        with conn.pipeline(transaction=False) as pipe:
            for scheduled_id in unschedule:
                registry.remove(scheduled_id, pipeline=pipe)
                pipe.delete(Job.key_for(scheduled_id))
            pipe.execute()
    if todo:
        enqueue(state, todo)
        mark_queued(state, todo, from_statuses=(PENDING, RETRYING))
        result.enqueued = todo
        log.info("trakkr_webhooks sweep: %s", result.as_dict())
    return result


#: The status :func:`_job_statuses` gives a ``started`` job whose worker is gone.
ABANDONED = "abandoned"


def _job_statuses(conn: Any, job_ids: Sequence[bytes | None], now: datetime, stuck_after: float) -> list[str | None]:
    """The RQ status of each job (``None``: no such job), with :data:`ABANDONED` for a
    ``started`` job whose worker's key is gone or that started more than ``stuck_after``
    seconds ago (two pipelined round trips)."""
    with conn.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            if job_id:
                pipe.hmget(Job.key_for(job_id.decode()), ["status", "started_at", "worker_name"])
            else:
                pipe.echo(b"")
        fields = [f if isinstance(f, list) else [None, None, None] for f in pipe.execute()]
    statuses = [s.decode() if s else None for s, _, _ in fields]
    started = [i for i, status in enumerate(statuses) if status == "started"]
    if not started:
        return statuses
    with conn.pipeline(transaction=False) as pipe:
        for i in started:
            worker = fields[i][2]
            pipe.exists(WORKER_KEY_PREFIX + worker.decode()) if worker else pipe.echo(b"")
        workers_alive = pipe.execute()
    for i, alive in zip(started, workers_alive, strict=True):
        started_at = _parse_rq_time(fields[i][1])
        too_old = started_at is not None and started_at <= now - timedelta(seconds=stuck_after)
        if alive == 0 or too_old:
            statuses[i] = ABANDONED
    return statuses


def _parse_rq_time(value: bytes | None) -> datetime | None:
    if not value:
        return None
    try:
        return utcparse(value.decode())
    except ValueError:
        return None


def unschedule_of(
    rows: Sequence[Any], job_ids: Sequence[bytes | None], statuses: Sequence[str | None]
) -> list[tuple[str, str]]:
    """``(job id, delivery id)`` of the still-scheduled jobs of overdue retries (removed before re-enqueueing)."""
    return [
        (job_id.decode(), row.id)
        for row, job_id, status in zip(rows, job_ids, statuses, strict=True)
        if row.status == RETRYING and status == "scheduled" and job_id
    ]


def _unchanged(state: WebhooksState, rows: Sequence[Any], candidates: Sequence[str]) -> set[str]:
    """The ``candidates`` whose status and ``updated_at`` are still what ``rows`` read."""
    if not candidates:
        return set()
    D = state.models.Delivery
    session = state.db.session
    before = {row.id: (row.status, row.updated_at) for row in rows}
    now_rows = session.execute(sa.select(D.id, D.status, D.updated_at).where(D.id.in_(list(candidates)))).all()
    session.rollback()  # end the read transaction
    return {row.id for row in now_rows if before.get(row.id) == (row.status, row.updated_at)}


def sweep_all(state: WebhooksState, *, pending_grace: float | None = None) -> SweepResult:
    """Sweep page after page until every open delivery was looked at; the summed result."""
    total = sweep(state, pending_grace=pending_grace)
    while total.next is not None:
        page = sweep(state, pending_grace=pending_grace, after=total.next)
        total.add(page)
        total.next = page.next
    return total


def periodic_sweep(state: WebhooksState) -> SweepResult:
    """One page of the periodic sweep, going on from where the last one (of any worker) stopped.

    The cursor lives in Redis next to the sweep lock, so whichever worker sweeps next reads
    on; it expires after a few intervals, so a lost one only means starting over.
    """
    conn = state.redis()
    raw = cast("bytes | None", conn.get(state.sweep_cursor_key))
    after = None
    if raw:
        try:
            phase, created, row_id = json.loads(raw)
            after = SweepCursor(phase, (datetime.fromisoformat(created), row_id))
        except (ValueError, TypeError):
            after = None  # unreadable (another version wrote it): start over
    result = sweep(state, after=after)
    if result.next is None:
        conn.delete(state.sweep_cursor_key)
    else:
        created_at, row_id = result.next.key
        ttl = max(60, int(state.settings.sweep_interval * 5))
        conn.set(state.sweep_cursor_key, json.dumps([result.next.phase, created_at.isoformat(), row_id]), ex=ttl)
    return result


def sweep_lock(state: WebhooksState, ttl: float) -> bool:
    """Take the queue's sweep lock for ``ttl`` seconds: one sweeper per interval among many workers."""
    return bool(state.redis().set(state.sweep_lock_key, os.getpid(), nx=True, px=max(100, int(ttl * 1000))))
