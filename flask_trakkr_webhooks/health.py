"""Endpoint health: disable a webhook that is gone or keeps failing, tell the host, replay what it missed.

* **410 Gone** (the Standard Webhooks recommendation): a delivery answered 410 disables
  its webhook at once.
* **A failing streak**: every finished delivery (``succeeded`` / ``failed``; not the
  attempts, and not test sends) updates the webhook's ``consecutive_failures`` and
  ``failing_since``; a success resets both. Once ``DISABLE_AFTER_FAILURES`` deliveries in
  a row have failed over at least ``DISABLE_AFTER_HOURS`` (first failure to now), the
  webhook is disabled. ``DISABLE_AFTER_FAILURES = 0`` turns this rule off (410 still applies).
* Disabling sets ``active = false``, ``disabled_reason`` and ``disabled_at``, and cancels the
  webhook's open deliveries (``pending``/``queued``/``retrying``; one already ``sending``
  finishes), in the transaction that records the attempt. The UPDATE is conditional on
  the webhook being active, so among concurrent workers exactly one disables it and
  tells the host: after the commit, :data:`webhook_disabled` (a blinker signal, sender:
  the app) is sent and every ``@webhooks.on_disabled`` function is called with the
  webhook row. Their exceptions are logged, never raised into the worker.
* Replaying what a webhook missed is :mod:`.replay`.

:func:`streaks` is the pure part (what a group of finished deliveries does to each
webhook's counters); :func:`account` applies it in the caller's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import sqlalchemy as sa
from blinker import Namespace
from flask import current_app

from . import ids, metrics
from .rows import cancel_open
from .state import WebhooksState

log = logging.getLogger("flask_trakkr_webhooks")

_signals = Namespace()
#: Sent after a webhook was disabled by the sender (410 or a failing streak), once the
#: change is committed: ``webhook_disabled.send(app, webhook=<row>, reason=<str>)``.
webhook_disabled = _signals.signal("trakkr-webhook-disabled")

GONE = 410


@dataclass(frozen=True)
class Finished:
    """A delivery that reached ``succeeded`` or ``failed`` (never a test send)."""

    webhook_id: str
    delivery_id: str
    succeeded: bool
    at: datetime
    status_code: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Streak:
    """What one group of finished deliveries does to one webhook's counters."""

    webhook_id: str
    #: A success in the group: the counters restart from the failures after the last success.
    reset: bool
    #: Failures to add (after the last success, when ``reset``).
    failures: int
    #: The first of those failures (``failing_since`` when the streak starts here).
    first_failure_at: datetime | None
    #: The last failure, for the reason text.
    last: Finished | None
    #: A failure answered 410 Gone after the last success, if any.
    gone: Finished | None


@dataclass(frozen=True)
class Disabled:
    """A webhook this transaction disabled."""

    webhook_id: str
    reason: str
    #: ``gone`` (a 410 answer) or ``failing`` (a streak): the metrics' label.
    kind: str = "failing"


def streaks(finished: Iterable[Finished]) -> list[Streak]:
    """Per webhook (sorted by id: a stable lock order), the effect of ``finished`` in time order (pure)."""
    by_hook: dict[str, list[Finished]] = {}
    for item in sorted(finished, key=lambda f: f.at):
        by_hook.setdefault(item.webhook_id, []).append(item)
    out = []
    for webhook_id in sorted(by_hook):
        items = by_hook[webhook_id]
        last_success = max((i for i, f in enumerate(items) if f.succeeded), default=None)
        after = items if last_success is None else items[last_success + 1 :]
        out.append(
            Streak(
                webhook_id=webhook_id,
                reset=last_success is not None,
                failures=len(after),
                first_failure_at=after[0].at if after else None,
                last=after[-1] if after else None,
                gone=next((f for f in after if f.status_code == GONE), None),
            )
        )
    return out


def should_disable(
    failures: int, failing_since: datetime | None, now: datetime, *, after_failures: int, after_hours: float
) -> bool:
    """The streak rule (pure): ``after_failures`` failures in a row spanning ``after_hours`` hours."""
    if after_failures <= 0 or failures < after_failures or failing_since is None:
        return False
    return ids.as_utc(failing_since) <= now - timedelta(hours=after_hours)


def streak_reason(failures: int, failing_since: datetime, now: datetime, last: Finished | None) -> str:
    """The ``disabled_reason`` of a failing streak."""
    hours = (now - ids.as_utc(failing_since)).total_seconds() / 3600
    text = f"{failures} deliveries in a row failed over {hours:.1f} hours (since {ids.isoformat(failing_since)})"
    if last is not None:
        text += f"; last: {_describe(last)}"
    return text


def gone_reason(item: Finished) -> str:
    """The ``disabled_reason`` of a 410 answer."""
    return f"the endpoint answered 410 Gone to delivery {item.delivery_id}: it asked not to be sent more"


def _describe(item: Finished) -> str:
    text = f"HTTP {item.status_code}" if item.status_code is not None else (item.error or "no answer")
    return text[:300]


def account(state: WebhooksState, finished: Sequence[Finished], *, now: datetime | None = None) -> list[Disabled]:
    """Apply ``finished`` to the webhooks' counters and disable those that must be, in the session's
    transaction (the caller commits, then calls :func:`notify`). Returns the webhooks disabled here."""
    if not finished:
        return []
    now = now or ids.utcnow()
    session = state.db.session
    table = state.models.Webhook.__table__
    c = table.c
    changes = streaks(finished)
    # One executemany in webhook-id order: concurrent recorders lock webhook rows in the same order.
    # A success for a webhook with clean counters matches no row (and locks none).
    session.execute(
        table.update()
        .where(
            c.id == sa.bindparam("b_id"),
            sa.or_(
                sa.bindparam("b_failures", type_=sa.Integer) > 0,
                c.consecutive_failures > 0,
                c.failing_since.is_not(None),
            ),
        )
        .values(
            consecutive_failures=sa.case(
                (sa.bindparam("b_reset", type_=sa.Boolean), sa.bindparam("b_failures", type_=sa.Integer)),
                else_=c.consecutive_failures + sa.bindparam("b_failures", type_=sa.Integer),
            ),
            failing_since=sa.case(
                (sa.bindparam("b_reset", type_=sa.Boolean), sa.bindparam("b_since", type_=c.failing_since.type)),
                else_=sa.func.coalesce(c.failing_since, sa.bindparam("b_since", type_=c.failing_since.type)),
            ),
        ),
        [dict(b_id=s.webhook_id, b_reset=s.reset, b_failures=s.failures, b_since=s.first_failure_at) for s in changes],
    )
    disabled: list[Disabled] = []
    for streak in changes:
        reason: str | None
        kind = "gone" if streak.gone is not None else "failing"
        if streak.gone is not None:
            reason = gone_reason(streak.gone)
        elif streak.failures:
            reason = _streak_to_disable(state, streak, now)
        else:
            continue
        if reason is not None and disable(state, streak.webhook_id, reason, now=now):
            disabled.append(Disabled(streak.webhook_id, reason, kind))
    return disabled


def _streak_to_disable(state: WebhooksState, streak: Streak, now: datetime) -> str | None:
    settings = state.settings
    if settings.disable_after_failures <= 0:
        return None
    W = state.models.Webhook
    row = state.db.session.execute(
        sa.select(W.consecutive_failures, W.failing_since).where(
            W.id == streak.webhook_id, W.active.is_(True), W.deleted_at.is_(None)
        )
    ).first()
    if row is None or not should_disable(
        row.consecutive_failures,
        row.failing_since,
        now,
        after_failures=settings.disable_after_failures,
        after_hours=settings.disable_after_hours,
    ):
        return None
    return streak_reason(row.consecutive_failures, row.failing_since, now, streak.last)


def disable(state: WebhooksState, webhook_id: str, reason: str, *, now: datetime | None = None) -> bool:
    """Disable an active webhook and cancel its open deliveries, in the session's transaction.

    False when it was already inactive or deleted (someone else disabled it first).
    """
    now = now or ids.utcnow()
    session = state.db.session
    W = state.models.Webhook.__table__
    done = cast(
        "sa.CursorResult[object]",  # an UPDATE answers with a CursorResult (rowcount)
        session.execute(
            W.update()
            .where(W.c.id == webhook_id, W.c.active.is_(True), W.c.deleted_at.is_(None))
            .values(active=False, disabled_reason=reason, disabled_at=now, updated_at=now)
        ),
    )
    if done.rowcount != 1:
        return False
    cancel_open(state, webhook_id, f"the webhook was disabled ({reason})", now=now)
    log.warning("trakkr_webhooks: webhook %s disabled: %s", webhook_id, reason)
    return True


def notify(state: WebhooksState, disabled: Sequence[Disabled]) -> None:
    """Tell the host about webhooks disabled by a committed transaction (needs an app context)."""
    if not disabled:
        return
    if state.settings.metrics:
        for item in disabled:
            metrics.disabled(item.kind)
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # werkzeug LocalProxy
    session = state.db.session
    handlers = list(state.hooks.disabled_handlers)
    for item in disabled:
        try:
            webhook = session.get(state.models.Webhook, item.webhook_id, populate_existing=True)
        except Exception:
            log.exception("trakkr_webhooks: could not load disabled webhook %s", item.webhook_id)
            continue
        for handler in handlers:
            try:
                handler(webhook)
            except Exception:
                log.exception("trakkr_webhooks: an on_disabled handler failed for webhook %s", item.webhook_id)
        try:
            webhook_disabled.send(app, webhook=webhook, reason=item.reason)
        except Exception:
            log.exception("trakkr_webhooks: a webhook_disabled receiver failed for webhook %s", item.webhook_id)
