"""Is the webhook system healthy? What ``flask webhooks status`` reports (database and Redis).

:func:`check` reads the backlog by status, the oldest waiting delivery's age, the live
workers (RQ's worker registry for the queue), the disabled webhooks, the webhooks failing
now and the success rate of the attempts of the last five minutes, and compares them with
the ``TRAKKR_WEBHOOKS_STATUS_*`` thresholds. Needs an app context.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from rq import Worker

from . import ids, metrics, retry
from .models import PENDING, QUEUED, RETRYING
from .observe import aware
from .state import WebhooksState

#: The window of the success rate.
SUCCESS_WINDOW = timedelta(minutes=5)
#: Most webhooks listed by name per group (the counts are complete).
LISTED = 20


@dataclass
class Status:
    """The answer of :func:`check` (``--json`` prints :meth:`as_dict`)."""

    healthy: bool
    problems: list[str]
    backlog: dict[str, int]
    oldest_waiting_seconds: float | None
    workers: list[str] | None
    disabled_endpoints: int
    failing_endpoints: int
    success_rate_5m: float | None
    attempts_5m: int
    disabled: list[dict[str, Any]] = field(default_factory=list)
    failing: list[dict[str, Any]] = field(default_factory=list)
    thresholds: dict[str, Any] = field(default_factory=dict)
    checked_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return asdict(self)


def backlog(state: WebhooksState) -> dict[str, int]:
    """Open deliveries by status (one grouped COUNT on the status index)."""
    D = state.models.Delivery
    rows = state.db.session.execute(
        sa.select(D.status, sa.func.count()).where(D.status.in_(metrics.BACKLOG_STATUSES)).group_by(D.status)
    ).all()
    counts = dict.fromkeys(metrics.BACKLOG_STATUSES, 0)
    counts.update({status: int(count) for status, count in rows})
    return counts


def oldest_waiting(state: WebhooksState, now: datetime) -> float | None:
    """Seconds the longest-waiting delivery has waited: ``pending``/``queued`` since it was
    written, a due ``retrying`` one since it came due; None when none waits."""
    D = state.models.Delivery
    session = state.db.session
    fresh = session.execute(sa.select(sa.func.min(D.created_at)).where(D.status.in_((PENDING, QUEUED)))).scalar()
    due = session.execute(
        sa.select(sa.func.min(D.next_attempt_at)).where(D.status == RETRYING, D.next_attempt_at <= now)
    ).scalar()
    times = [aware(t) for t in (fresh, due) if t is not None]
    return max(0.0, (now - min(times)).total_seconds()) if times else None


def live_workers(state: WebhooksState) -> list[str]:
    """Names of the live RQ workers serving the queue (RQ drops a worker's key when it stops
    beating)."""
    return sorted(w.name for w in Worker.all(queue=state.queue()))


def _webhooks(state: WebhooksState, where: Any, *columns: Any) -> tuple[int, list[dict[str, Any]]]:
    W = state.models.Webhook
    session = state.db.session
    count = int(session.execute(sa.select(sa.func.count()).select_from(W).where(where)).scalar() or 0)
    rows = session.execute(sa.select(W.id, *columns).where(where).order_by(W.id).limit(LISTED)).all()
    listed = [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row._mapping.items()} for row in rows]
    return count, listed


def success_rate(state: WebhooksState, now: datetime) -> tuple[float | None, int]:
    """Share of the attempts started in the last :data:`SUCCESS_WINDOW` that succeeded (deferrals
    left out), and their number; None when there were none."""
    A = state.models.Attempt
    rows = state.db.session.execute(
        sa.select(A.outcome, sa.func.count())
        .where(A.started_at >= now - SUCCESS_WINDOW, A.outcome != retry.DEFERRED)
        .group_by(A.outcome)
    ).all()
    counts = {outcome: int(count) for outcome, count in rows}
    total = sum(counts.values())
    return (counts.get(retry.SUCCEEDED, 0) / total if total else None), total


def check(state: WebhooksState, *, now: datetime | None = None) -> Status:
    """Read everything and judge it against the thresholds (never raises for Redis: no
    workers known is a problem of its own)."""
    now = now or ids.utcnow()
    settings = state.settings
    W = state.models.Webhook
    problems: list[str] = []
    counts = backlog(state)
    oldest = oldest_waiting(state, now)
    try:
        workers: list[str] | None = live_workers(state)
    except Exception as exc:  # Redis unreachable
        workers = None
        problems.append(f"cannot list the workers: Redis answered {type(exc).__name__}: {exc}")
    disabled_count, disabled = _webhooks(
        state,
        sa.and_(W.active.is_(False), W.disabled_reason.is_not(None), W.deleted_at.is_(None)),
        W.disabled_reason,
        W.disabled_at,
    )
    failing_count, failing = _webhooks(
        state,
        sa.and_(W.active.is_(True), W.deleted_at.is_(None), W.consecutive_failures > 0),
        W.consecutive_failures,
        W.failing_since,
    )
    rate, attempts = success_rate(state, now)
    state.db.session.rollback()  # read only: end the transaction

    if workers is not None and len(workers) < settings.status_min_workers:
        problems.append(
            f"{len(workers)} live workers on queue {settings.queue!r}, fewer than "
            f"TRAKKR_WEBHOOKS_STATUS_MIN_WORKERS ({settings.status_min_workers})"
        )
    if oldest is not None and oldest > settings.status_max_backlog_age:
        problems.append(
            f"the oldest waiting delivery has waited {oldest:.0f} s, more than "
            f"TRAKKR_WEBHOOKS_STATUS_MAX_BACKLOG_AGE ({settings.status_max_backlog_age:g} s)"
        )
    if rate is not None and rate < settings.status_min_success_rate:
        problems.append(
            f"{rate:.0%} of {attempts} attempts in the last 5 minutes succeeded, less than "
            f"TRAKKR_WEBHOOKS_STATUS_MIN_SUCCESS_RATE ({settings.status_min_success_rate:.0%})"
        )
    limit = settings.status_max_disabled_endpoints
    if limit is not None and disabled_count > limit:
        problems.append(
            f"{disabled_count} webhooks are disabled, more than TRAKKR_WEBHOOKS_STATUS_MAX_DISABLED_ENDPOINTS ({limit})"
        )
    return Status(
        healthy=not problems,
        problems=problems,
        backlog=counts,
        oldest_waiting_seconds=None if oldest is None else round(oldest, 3),
        workers=workers,
        disabled_endpoints=disabled_count,
        failing_endpoints=failing_count,
        success_rate_5m=None if rate is None else round(rate, 4),
        attempts_5m=attempts,
        disabled=disabled,
        failing=failing,
        thresholds={
            "max_backlog_age": settings.status_max_backlog_age,
            "min_workers": settings.status_min_workers,
            "min_success_rate": settings.status_min_success_rate,
            "max_disabled_endpoints": limit,
        },
        checked_at=now.isoformat(),
    )


def render(status: Status) -> str:
    """The human-readable report."""
    lines = [f"webhooks: {'healthy' if status.healthy else 'UNHEALTHY'}"]
    lines += [f"  problem: {p}" for p in status.problems]
    lines.append("  backlog: " + ", ".join(f"{k} {v}" for k, v in status.backlog.items()))
    age = status.oldest_waiting_seconds
    lines.append(f"  oldest waiting: {'none' if age is None else f'{age:.1f} s'}")
    workers = status.workers
    lines.append(
        f"  live workers: {'unknown' if workers is None else len(workers)}"
        + (f" ({', '.join(workers)})" if workers else "")
    )
    lines.append(f"  disabled webhooks: {status.disabled_endpoints}")
    lines += [f"    {w['id']}: {w['disabled_reason']}" for w in status.disabled]
    lines.append(f"  failing webhooks: {status.failing_endpoints}")
    lines += [f"    {w['id']}: {w['consecutive_failures']} failures in a row" for w in status.failing]
    rate = status.success_rate_5m
    lines.append(
        f"  success rate (5 min): {'no attempts' if rate is None else f'{rate:.1%} of {status.attempts_5m} attempts'}"
    )
    return "\n".join(lines)
