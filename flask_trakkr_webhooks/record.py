"""Recording attempts: the attempt rows, the deliveries' new states, health, and retries.

:func:`record` writes a group of :class:`attempt.Outcome` in one transaction (two
``executemany`` statements whatever the group's size), updates the webhooks' health in
the same transaction (:func:`health.account`), tells the host about webhooks it disabled
after the commit, and hands the retries to RQ's scheduler in one Redis round trip.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa

from . import dispatch, health, ids, observe, retry
from .attempt import Outcome
from .claim import Work
from .models import FAILED, RETRYING, SENDING, SUCCEEDED
from .state import WebhooksState

log = logging.getLogger("flask_trakkr_webhooks")


@dataclass(frozen=True)
class Result:
    """What one attempt did (also the answer of ``POST /webhooks/<id>/test``)."""

    delivery_id: str
    attempt: int
    outcome: str
    status: str
    status_code: int | None = None
    duration_ms: float | None = None
    error_type: str | None = None
    error_message: str | None = None
    next_attempt_at: datetime | None = None


def record(state: WebhooksState, outcomes: Sequence[Outcome]) -> list[Result]:
    """Write attempts and the deliveries' new states in one transaction; schedule the retries.

    Needs an app context. Two statements whatever the number of outcomes (``executemany``),
    then one Redis round trip for every retry. A delivery taken over by another worker
    meanwhile (its claim went stale) keeps the newer state: the UPDATE is conditional, and
    only deliveries whose UPDATE matched count towards their webhooks' health, so a delivery
    recorded by two workers counts once. Finished deliveries update their webhooks' health
    in the same transaction (:func:`health.account`: one more statement, more only when a
    webhook is disabled). A delivery deleted meanwhile gets no attempt row (nothing to attach
    it to) and does not fail the group.
    """
    if not outcomes:
        return []
    m = state.models
    session = state.db.session
    attempts, updates, results, retries, finished = [], [], [], [], []
    for o in outcomes:
        answer, decision, work = o.answer, o.decision, o.work
        next_at = (
            o.finished + timedelta(seconds=cast(float, decision.delay)) if decision.retry else None
        )  # retries carry a delay
        status = SUCCEEDED if decision.outcome == retry.SUCCEEDED else RETRYING if decision.retry else FAILED
        problem = f"{answer.error_type}: {answer.error_message}" if answer.error else decision.reason
        attempts.append(
            dict(
                id=ids.new_id(ids.ATTEMPT),
                delivery_id=work.delivery_id,
                number=work.attempt,
                started_at=o.started,
                duration_ms=o.duration_ms,
                status_code=answer.status_code,
                outcome=decision.outcome,
                error_type=answer.error_type,
                error_message=answer.error_message,
                response_headers=answer.headers,
                response_body=answer.body,
                next_retry_at=next_at,
            )
        )
        updates.append(
            dict(
                b_id=work.delivery_id,
                b_number=work.attempt,
                status=status,
                last_status_code=answer.status_code,
                last_error=None if status == SUCCEEDED else problem,
                next_attempt_at=next_at,
                updated_at=o.finished,
                completed_at=None if decision.retry else o.finished,
                b_deferred=1 if decision.deferred else 0,
                b_waited=float(decision.delay or 0.0) if decision.deferred else 0.0,
            )
        )
        results.append(
            Result(
                delivery_id=work.delivery_id,
                attempt=work.attempt,
                outcome=decision.outcome,
                status=status,
                status_code=answer.status_code,
                duration_ms=o.duration_ms,
                error_type=answer.error_type,
                error_message=None if status == SUCCEEDED else (answer.error_message if answer.error else problem),
                next_attempt_at=next_at,
            )
        )
        if next_at is not None:
            retries.append((work.delivery_id, next_at))
        elif work.webhook_id is not None and not work.is_test:
            finished.append(
                health.Finished(
                    webhook_id=work.webhook_id,
                    delivery_id=work.delivery_id,
                    succeeded=status == SUCCEEDED,
                    at=o.finished,
                    status_code=answer.status_code,
                    error=problem,
                )
            )
    table = m.Delivery.__table__
    try:
        session.execute(
            table.update()
            .where(*_still_claimed(table))
            .values(
                **{k: sa.bindparam(k) for k in updates[0] if not k.startswith("b_")},
                deferrals=table.c.deferrals + sa.bindparam("b_deferred"),
                deferred_seconds=table.c.deferred_seconds + sa.bindparam("b_waited"),
            ),
            updates,
        )
        recorded = _recorded_here(state, updates)
        attempts = _new_attempts(state, attempts, recorded)
        if attempts:
            session.execute(sa.insert(m.Attempt.__table__), attempts)
        finished = [f for f in finished if recorded.get(f.delivery_id)]
        disabled = health.account(state, finished)
        session.commit()
    except Exception:
        session.rollback()
        raise
    observe.recorded(state, outcomes, recorded)
    health.notify(state, disabled)
    retries = [r for r in retries if recorded.get(r[0])]
    if retries:
        try:
            dispatch.schedule_retries(state, retries)
        except Exception as exc:  # Redis down: the sweep enqueues overdue retries
            log.warning("trakkr_webhooks: could not schedule %d retries (%s); the sweep will", len(retries), exc)
    return results


def _still_claimed(table: sa.Table) -> tuple[Any, ...]:
    """WHERE the row is still this claim's (``b_id`` at attempt ``b_number``, ``sending``): a
    row the sweep re-queued meanwhile is left alone."""
    return (
        table.c.id == sa.bindparam("b_id"),
        table.c.status == SENDING,
        table.c.attempt_count == sa.bindparam("b_number"),
    )


@dataclass(frozen=True)
class Release:
    """A claimed delivery handed back unsent: its endpoint's budget is spent until ``at``."""

    work: Work
    at: datetime


def release(state: WebhooksState, releases: Sequence[Release]) -> int:
    """Hand claimed, unsent deliveries back to the queue until their endpoint's budget allows
    (``retrying`` at ``at``, the claim's attempt number given back: nothing was sent, so no
    attempt is on record). Returns how many were still claimed here. Needs an app context."""
    if not releases:
        return 0
    table = state.models.Delivery.__table__
    session = state.db.session
    now = ids.utcnow()
    rows = [
        dict(b_id=r.work.delivery_id, b_number=r.work.attempt, next_attempt_at=r.at, updated_at=now) for r in releases
    ]
    try:
        session.execute(
            table.update()
            .where(*_still_claimed(table))
            .values(
                status=RETRYING,
                attempt_count=table.c.attempt_count - 1,
                next_attempt_at=sa.bindparam("next_attempt_at"),
                updated_at=sa.bindparam("updated_at"),
            ),
            rows,
        )
        held = {
            row.id
            for row in session.execute(
                sa.select(table.c.id).where(
                    table.c.id.in_([r["b_id"] for r in rows]),
                    table.c.status == RETRYING,
                    table.c.next_attempt_at.isnot(None),
                )
            )
        }
        session.commit()
    except Exception:
        session.rollback()
        raise
    retries = [(r.work.delivery_id, r.at) for r in releases if r.work.delivery_id in held]
    if retries:
        try:
            dispatch.schedule_retries(state, retries)
        except Exception as exc:  # Redis down: the sweep enqueues them when due
            log.warning(
                "trakkr_webhooks: could not schedule %d paced deliveries (%s); the sweep will", len(retries), exc
            )
    return len(retries)


def _recorded_here(state: WebhooksState, updates: Sequence[dict[str, Any]]) -> dict[str, bool]:
    """Which deliveries still exist, and whether this transaction's conditional UPDATE set each one.

    Read after the UPDATE, in its transaction: a row it matched is locked and holds exactly
    the values written (its new status and this attempt's number). A row it did not match
    cannot come to hold them meanwhile: ``attempt_count`` only grows with each claim, so a
    worker that took the delivery over holds a higher number. One statement, portable
    (an ``executemany`` UPDATE has no per-row count or RETURNING on every driver).
    """
    table = state.models.Delivery.__table__
    rows = state.db.session.execute(
        sa.select(table.c.id, table.c.status, table.c.attempt_count).where(table.c.id.in_([u["b_id"] for u in updates]))
    ).all()
    found = {row.id: (row.status, row.attempt_count) for row in rows}
    return {u["b_id"]: found[u["b_id"]] == (u["status"], u["b_number"]) for u in updates if u["b_id"] in found}


def _new_attempts(
    state: WebhooksState, attempts: list[dict[str, Any]], recorded: dict[str, bool]
) -> list[dict[str, Any]]:
    """The attempt rows to insert: none for a deleted delivery, and none whose number is
    already on record (a worker that took the delivery over recorded it as lost)."""
    attempts = [a for a in attempts if a["delivery_id"] in recorded]
    taken_over = [a["delivery_id"] for a in attempts if not recorded[a["delivery_id"]]]
    if not taken_over:
        return attempts
    A = state.models.Attempt
    rows = state.db.session.execute(sa.select(A.delivery_id, A.number).where(A.delivery_id.in_(taken_over)))
    known = {(row.delivery_id, row.number) for row in rows}
    return [a for a in attempts if (a["delivery_id"], a["number"]) not in known]
