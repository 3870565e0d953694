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
from typing import cast

import sqlalchemy as sa

from . import dispatch, health, ids, retry
from .attempt import Outcome
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
    meanwhile (its claim went stale) keeps the newer state: the UPDATE is conditional.
    Finished deliveries update their webhooks' health in the same transaction
    (:func:`health.account`: one more statement, more only when a webhook is disabled).
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
        status = {retry.SUCCEEDED: SUCCEEDED, retry.RETRY: RETRYING}.get(decision.outcome, FAILED)
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
        session.execute(sa.insert(m.Attempt.__table__), attempts)
        session.execute(
            table.update()
            .where(
                table.c.id == sa.bindparam("b_id"),
                table.c.status == SENDING,
                table.c.attempt_count == sa.bindparam("b_number"),
            )
            .values(**{k: sa.bindparam(k) for k in updates[0] if not k.startswith("b_")}),
            updates,
        )
        disabled = health.account(state, finished)
        session.commit()
    except Exception:
        session.rollback()
        raise
    health.notify(state, disabled)
    if retries:
        try:
            dispatch.schedule_retries(state, retries)
        except Exception as exc:  # Redis down: the sweep enqueues overdue retries
            log.warning("trakkr_webhooks: could not schedule %d retries (%s); the sweep will", len(retries), exc)
    return results
