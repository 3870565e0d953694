"""Claiming deliveries: the atomic move to ``sending``, and what an attempt needs (database).

* :func:`claim` moves deliveries to ``sending`` with one conditional ``UPDATE ... RETURNING``
  (two workers never send one delivery at once) and numbers the attempt;
* :func:`load` reads what will be sent as plain :class:`Work` (safe across threads), with
  credentials read raw and decrypted row by row: a row that cannot be prepared (a credential
  encrypted with a key that is not configured, its event gone) becomes a :class:`Work` with a
  ``problem``, which the engine records as that delivery's permanent failure, and never fails
  the rest of the batch;
* :func:`finish_skipped` ends the claimed deliveries that will not be sent (webhook deleted
  or inactive: ``cancelled``; attempts used up by dead workers: ``failed``);
* :func:`prepare` is the three in a row, the claim and the load in one transaction (on
  PostgreSQL one statement: the claim's ``UPDATE`` in a CTE joined to the webhooks and events),
  plus clearing the de-duplication record.

Next on the delivery path: :mod:`.attempt` (build and send, no database), then :mod:`.record`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

import sqlalchemy as sa

from . import auth, crypto, dispatch, ids, message, metrics, pacing, providers, retry
from .models import CANCELLED, FAILED, PENDING, QUEUED, RETRYING, SENDING
from .state import WebhooksState

log = logging.getLogger("flask_trakkr_webhooks")

#: Tables whose prebuilt claim and load statements are kept (one set per host ``db``; the
#: bound keeps an app factory that builds many ``db`` objects from growing the cache).
STATEMENT_CACHE = 16

#: A retry job may start this early (clock differences between hosts) and still claim.
EARLY_TOLERANCE = timedelta(milliseconds=500)


@dataclass(frozen=True)
class Work:
    """A claimed delivery and everything needed to send it (plain data: safe across threads)."""

    delivery_id: str
    attempt: int
    event_id: str
    event_type: str
    payload: Mapping[str, Any]
    is_test: bool
    endpoint: message.Endpoint | None
    #: Why it will not be sent (``cancelled``/``failed``), or None.
    skip: tuple[str, str] | None = None
    #: The webhook's id: a finished delivery counts towards its health (:mod:`health`).
    webhook_id: str | None = None
    #: When it was claimed: a claim older than ``STUCK_AFTER`` is not sent (the sweep gives it
    #: to a fresh claim, which reads the webhook's current URL, credentials and secret).
    claimed_at: datetime | None = None
    #: Why it cannot be sent (``(error type, message)``: an undecryptable credential, its event
    #: gone): the engine records a failed attempt without sending anything.
    problem: tuple[str, str] | None = None
    #: Its rate-limit deferrals so far and their waits in all (:mod:`.retry`): deferrals do
    #: not count towards the retries.
    deferrals: int = 0
    deferred_seconds: float = 0.0
    #: The rate its endpoint is paced to (:func:`.pacing.effective`; empty: not paced) and
    #: the endpoint's key in the shared budget (:mod:`.ratelimit`).
    rate_limit: pacing.RateLimit = ()
    pace_key: str = ""
    #: Its host serves many independent endpoints (Slack, Discord, Teams, ``SHARED_HOSTS``):
    #: the concurrency cap applies per webhook URL, not per host.
    per_endpoint: bool = False
    #: The webhook's provider (the metrics' label, also when there is no endpoint) and when
    #: the delivery was written by its emit (the lag to its success).
    provider: str = "webhook"
    emitted_at: datetime | None = None
    #: The emit's trace context (W3C ``traceparent``), the parent of the attempt's span.
    trace_context: str | None = None
    #: This claim's name for its send slot in its endpoint's budget (:mod:`.ratelimit`): a
    #: fresh one per claim, so an attempt claimed again never takes over its earlier slot.
    slot: str = field(default_factory=lambda: ids.new_id("slot"))

    @property
    def retries_used(self) -> int:
        """Which attempt this is, deferrals not counted (1 = the first)."""
        return self.attempt - self.deferrals

    @property
    def host(self) -> str:
        """The unit of the per-host concurrency cap: ``host:port`` of the endpoint, or the
        endpoint itself on a host shared by many endpoints."""
        if self.endpoint is None:
            return ""
        if self.per_endpoint:
            return "endpoint:" + (self.pace_key or pacing.key(self.endpoint.url))
        try:
            parts = urlsplit(self.endpoint.url)
            return f"{parts.hostname}:{parts.port or ''}"
        except ValueError:
            return self.endpoint.url


def _claim_update(D: sa.Table) -> sa.Update:
    """The claim: the claimable ones of ``:ids`` to ``sending`` (``:now``, ``:early``,
    ``:stuck``: the claim's time, the latest ``next_attempt_at`` a retry may have, the
    latest ``claimed_at`` of a claim taken over)."""
    now = sa.bindparam("now", type_=D.c.claimed_at.type)
    claimable = sa.or_(
        D.c.status.in_((PENDING, QUEUED)),
        sa.and_(
            D.c.status == RETRYING,
            sa.or_(D.c.next_attempt_at.is_(None), D.c.next_attempt_at <= sa.bindparam("early", type_=now.type)),
        ),
        # A claim older than STUCK_AFTER belongs to a worker that died mid-attempt.
        sa.and_(D.c.status == SENDING, D.c.claimed_at <= sa.bindparam("stuck", type_=now.type)),
    )
    return (
        D.update()
        .where(D.c.id.in_(sa.bindparam("ids", expanding=True)), D.c.is_test.is_(False), claimable)
        .values(status=SENDING, claimed_at=now, updated_at=now, attempt_count=D.c.attempt_count + 1)
    )


def _claim_params(state: WebhooksState, delivery_ids: Sequence[str], now: datetime) -> dict[str, Any]:
    return {
        "ids": list(delivery_ids),
        "now": now,
        "early": now + EARLY_TOLERANCE,
        "stuck": now - timedelta(seconds=state.settings.stuck_after),
    }


@functools.lru_cache(maxsize=STATEMENT_CACHE)
def _claim_statement(D: sa.Table) -> sa.UpdateBase:
    """:func:`claim`'s ``UPDATE ... RETURNING``, built once per table (see :func:`_load_statements`)."""
    return _claim_update(D).returning(D.c.id, D.c.attempt_count)


def claim(
    state: WebhooksState, delivery_ids: Sequence[str], *, now: datetime | None = None, commit: bool = True
) -> dict[str, int]:
    """Move the claimable ones of ``delivery_ids`` to ``sending``; return ``{id: attempt number}``.

    One conditional ``UPDATE ... RETURNING``, committed at once so other workers see the
    claim; with ``commit`` false the caller commits (:func:`prepare` loads in the same
    transaction: until then the claimed rows stay locked, so another worker's claim of
    them waits and then skips them).
    """
    if not delivery_ids:
        return {}
    session = state.db.session
    params = _claim_params(state, delivery_ids, now or ids.utcnow())
    try:
        rows = session.execute(_claim_statement(state.models.Delivery.__table__), params).all()
        if commit:
            session.commit()
    except Exception:
        session.rollback()
        raise
    return {row.id: row.attempt_count for row in rows}


#: The webhook columns a delivery needs (:func:`endpoint_of` and the skip checks).
_ENDPOINT_COLUMNS = (
    "url",
    "provider",
    "template",
    "auth_type",
    *auth.CREDENTIAL_COLUMNS,
    "signing_secret",
    "previous_signing_secret",
    "previous_secret_expires_at",
    "headers",
    "rate_limit",
    "active",
    "deleted_at",
)


def load(
    state: WebhooksState,
    claimed: Mapping[str, int],
    *,
    now: datetime | None = None,
    claimed_at: datetime | None = None,
) -> list[Work]:
    """The :class:`Work` of claimed deliveries (two queries), with credentials in plain text
    (``claimed_at``: the time of the claim, default ``now``).

    Plain rows, no ORM objects, and each event's payload read and decoded once: a batch
    is mostly one event's fan-out, and this runs on the worker's job thread between
    batches (ORM objects cost about twice the CPU here).
    """
    if not claimed:
        return []
    session = state.db.session
    m = state.models
    select_rows, select_events = _load_statements(m.Delivery.__table__, m.Webhook.__table__, m.Event.__table__)
    rows = session.execute(select_rows, {"ids": list(claimed)}).all()
    events: dict[str, tuple[str, Mapping[str, Any]]] = (
        {
            row.id: (row.type, row.payload)
            for row in session.execute(select_events, {"ids": list({row.event_id for row in rows})}).all()
        }
        if rows
        else {}
    )
    return _works(state, rows, claimed, events, now or ids.utcnow(), claimed_at)


def _works(
    state: WebhooksState,
    rows: Sequence[Any],
    claimed: Mapping[str, int],
    events: Mapping[str, tuple[str, Mapping[str, Any]]],
    now: datetime,
    claimed_at: datetime | None,
) -> list[Work]:
    """The :class:`Work` of loaded rows (``events``: type and payload by event id); the
    lost attempts put on record and the transaction committed."""
    W = state.models.Webhook.__table__
    max_attempts = 1 + len(state.settings.retry_delays)
    endpoints: dict[str, message.Endpoint | tuple[str, str]] = {}
    paces: dict[str, tuple[pacing.RateLimit, str, bool]] = {}
    ring = crypto.current_keyring()
    encrypted = [name for name in _ENDPOINT_COLUMNS if isinstance(W.c[name].type, crypto.EncryptedText)]
    out = []
    for row in rows:
        number = claimed[row.id]
        event = events.get(row.event_id)
        skip = None
        endpoint: message.Endpoint | None = None
        problem: tuple[str, str] | None = None
        if row.deleted_at is not None:
            skip = (CANCELLED, "the webhook was deleted")
        elif not row.active:
            skip = (CANCELLED, "the webhook is inactive")
        elif number - (row.deferrals or 0) > max_attempts:
            skip = (FAILED, f"gave up: the worker stopped during attempt {number - 1} of {max_attempts}")
        elif event is None:
            problem = ("EventMissing", f"the event {row.event_id} of this delivery no longer exists")
        else:
            found = endpoints.get(row.webhook_id)
            if found is None:
                found = endpoints[row.webhook_id] = _endpoint_or_problem(row, now, ring, encrypted)
            if isinstance(found, message.Endpoint):
                endpoint = found
            else:
                problem = found
        pace = _pacing(state, row, endpoint, paces)
        out.append(
            Work(
                delivery_id=row.id,
                attempt=number,
                event_id=row.event_id,
                event_type=event[0] if event is not None else "",
                payload=event[1] if event is not None else {},
                is_test=row.is_test,
                endpoint=endpoint,
                skip=skip,
                webhook_id=row.webhook_id,
                problem=problem,
                claimed_at=claimed_at or now,
                deferrals=row.deferrals or 0,
                deferred_seconds=row.deferred_seconds or 0.0,
                rate_limit=pace[0],
                pace_key=pace[1],
                per_endpoint=pace[2],
                provider=row.provider or "webhook",
                emitted_at=row.emitted_at,
                trace_context=row.trace_context,
            )
        )
    _record_lost_attempts(state, claimed, now)
    state.db.session.commit()  # end the transaction before the slow part
    return out


#: The delivery columns a :class:`Work` needs (``created_at`` is read as ``emitted_at``).
_DELIVERY_COLUMNS = ("id", "is_test", "event_id", "deferrals", "deferred_seconds", "created_at", "trace_context")


def _loaded_columns(deliveries: Any, W: sa.Table) -> list[Any]:
    """What :func:`_works` reads of a delivery (``deliveries``: its columns) and its webhook."""
    return [
        *(
            deliveries[name].label("emitted_at") if name == "created_at" else deliveries[name]
            for name in _DELIVERY_COLUMNS
        ),
        W.c.id.label("webhook_id"),
        *(_raw(W.c[name]) for name in _ENDPOINT_COLUMNS),
    ]


@functools.lru_cache(maxsize=STATEMENT_CACHE)
def _load_statements(D: sa.Table, W: sa.Table, E: sa.Table) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """:func:`load`'s two SELECTs, built once per set of tables: building and keying a
    statement of this size cost about as much CPU as running it (the ids are an expanding
    bound parameter)."""
    ids_: sa.BindParameter[Any] = sa.bindparam("ids", expanding=True)
    rows = sa.select(*_loaded_columns(D.c, W)).join(W, W.c.id == D.c.webhook_id).where(D.c.id.in_(ids_))
    events = sa.select(E.c.id, E.c.type, E.c.payload).where(E.c.id.in_(ids_))
    return rows, events


@functools.lru_cache(maxsize=STATEMENT_CACHE)
def _claim_and_load_statement(D: sa.Table, W: sa.Table, E: sa.Table) -> sa.Select[Any]:
    """Claim and load in one statement (PostgreSQL: an ``UPDATE ... RETURNING`` in a CTE,
    joined to its webhooks and events). Each event's payload comes on its first row only:
    a batch is mostly one event's fan-out, and it is decoded once."""
    returned = [D.c[name] for name in (*_DELIVERY_COLUMNS, "attempt_count", "webhook_id")]
    claimed = _claim_update(D).returning(*returned).cte("claimed")
    first = sa.func.row_number().over(partition_by=claimed.c.event_id, order_by=claimed.c.id) == 1
    return (
        sa.select(
            *_loaded_columns(claimed.c, W),
            claimed.c.attempt_count,
            E.c.id.label("found_event"),
            E.c.type.label("event_type"),
            sa.case((first, E.c.payload), else_=sa.null()).label("payload"),
            first.label("first"),
        )
        .select_from(claimed)
        .join(W, W.c.id == claimed.c.webhook_id)
        .outerjoin(E, E.c.id == claimed.c.event_id)
    )


def _claim_and_load(state: WebhooksState, delivery_ids: Sequence[str], claimed_at: datetime) -> list[Work]:
    """:func:`claim` and :func:`load` in one statement and one commit (PostgreSQL): on the
    latency path a round trip costs more than all the SQL it carries."""
    m = state.models
    statement = _claim_and_load_statement(m.Delivery.__table__, m.Webhook.__table__, m.Event.__table__)
    rows = state.db.session.execute(statement, _claim_params(state, delivery_ids, claimed_at)).all()
    claimed = {row.id: row.attempt_count for row in rows}
    events = {row.event_id: (row.event_type, row.payload) for row in rows if row.first and row.found_event}
    return _works(state, rows, claimed, events, claimed_at, claimed_at)


def _pacing(
    state: WebhooksState,
    row: Any,
    endpoint: message.Endpoint | None,
    cache: dict[str, tuple[pacing.RateLimit, str, bool]],
) -> tuple[pacing.RateLimit, str, bool]:
    """``(rate limit, budget key, per-endpoint concurrency)`` of a loaded row's webhook."""
    if endpoint is None:
        return ((), "", False)
    found = cache.get(row.webhook_id)
    if found is None:
        entry = providers.get(endpoint.provider)
        settings = state.settings
        limit = pacing.effective(
            row.rate_limit, endpoint.provider, settings.rate_limits, entry.rate_limit if entry else ()
        )
        try:
            hostname = (urlsplit(endpoint.url).hostname or "").lower().rstrip(".")
        except ValueError:
            hostname = ""
        shared = bool(entry and entry.shared_host) or hostname in settings.shared_hosts
        found = cache[row.webhook_id] = (limit, pacing.key(endpoint.url), shared)
    return found


def _record_lost_attempts(state: WebhooksState, claimed: Mapping[str, int], now: datetime) -> None:
    """Put attempts on record that a dead worker started but never recorded.

    A claim taken over from a worker that died mid-attempt skips that attempt's number;
    the log gets an attempt saying its outcome is unknown, so every attempt is listed.
    """
    retaken = [d for d, number in claimed.items() if number > 1]
    if not retaken:
        return
    A = state.models.Attempt
    session = state.db.session
    recorded: dict[str, int | None] = dict(
        session.execute(
            sa.select(A.delivery_id, sa.func.max(A.number)).where(A.delivery_id.in_(retaken)).group_by(A.delivery_id)
        ).all()
    )
    for delivery_id in retaken:
        for number in range((recorded.get(delivery_id) or 0) + 1, claimed[delivery_id]):
            session.add(
                A(
                    id=ids.new_id(ids.ATTEMPT),
                    delivery_id=delivery_id,
                    number=number,
                    started_at=now,
                    outcome=retry.RETRY,
                    error_type="WorkerLost",
                    error_message="the worker stopped during this attempt (killed or crashed); "
                    "whether the endpoint received it is unknown",
                )
            )


def _raw(column: Any) -> Any:
    """An encrypted column read as stored (decrypted per row by :func:`load`, so one row
    written with another key cannot fail the whole SELECT); any other column as it is."""
    if isinstance(column.type, crypto.EncryptedText):
        return sa.type_coerce(column, sa.Text).label(column.name)
    return column


class _Decrypted:
    """A webhook row with its encrypted columns decrypted (what :func:`endpoint_of` reads)."""

    def __init__(self, row: Any, values: Mapping[str, str | None]) -> None:
        self._row = row
        self._values = values

    def __getattr__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        return getattr(self._row, name)


def _endpoint_or_problem(
    row: Any, now: datetime, ring: crypto.KeyRing | None, encrypted: Sequence[str]
) -> message.Endpoint | tuple[str, str]:
    """The endpoint of a webhook row read by :func:`load` (``encrypted``: its columns read
    raw), or why it cannot be built."""
    values: dict[str, str | None] = {}
    for name in encrypted:
        stored = getattr(row, name)
        try:
            values[name] = None if stored is None else crypto.decrypt_value(stored, ring)
        except crypto.DecryptionError as exc:
            return (type(exc).__name__, f"cannot decrypt the webhook's {name}: {exc}")
    try:
        return endpoint_of(_Decrypted(row, values), now)
    except Exception as exc:  # malformed stored data: this webhook's deliveries alone fail
        log.warning("trakkr_webhooks: webhook %s cannot be prepared: %r", row.webhook_id, exc)
        return (type(exc).__name__, f"the webhook cannot be prepared: {exc}"[:1000])


def endpoint_of(hook: Any, now: datetime) -> message.Endpoint:
    """The :class:`message.Endpoint` of a webhook row (credentials decrypted by their column type)."""
    previous = None
    expires = ids.as_utc(getattr(hook, "previous_secret_expires_at", None))
    if hook.previous_signing_secret and expires is not None and expires > now:
        previous = hook.previous_signing_secret
    return message.Endpoint(
        url=hook.url,
        provider=hook.provider or "webhook",
        template=hook.template,
        auth_type=hook.auth_type or "none",
        signing_secret=hook.signing_secret,
        previous_signing_secret=previous,
        headers=dict(hook.headers or {}),
        **{name: getattr(hook, name) for name in auth.CREDENTIAL_COLUMNS},
    )


def finish_skipped(state: WebhooksState, works: Iterable[Work]) -> None:
    """End claimed deliveries that will not be sent (``cancelled`` / ``failed``), in one transaction."""
    works = [w for w in works if w.skip]
    if not works:
        return
    now = ids.utcnow()
    table = state.models.Delivery.__table__
    session = state.db.session
    for work in works:
        status, reason = cast("tuple[str, str]", work.skip)  # only works with a skip are left
        session.execute(
            table.update()
            .where(table.c.id == work.delivery_id, table.c.status == SENDING, table.c.attempt_count == work.attempt)
            # A cancelled or abandoned claim is not an attempt: give its number back.
            .values(
                status=status,
                last_error=reason,
                updated_at=now,
                completed_at=now,
                next_attempt_at=None,
                attempt_count=table.c.attempt_count - 1,
            )
        )
    session.commit()
    if state.settings.metrics:
        for work in works:
            metrics.finished(work.event_type, work.provider, cast("tuple[str, str]", work.skip)[0])


def prepare(state: WebhooksState, delivery_ids: Sequence[str], *, forget: bool = True) -> list[Work]:
    """Claim ``delivery_ids``, load what will be sent, and end those that will not.

    ``forget``: clear their de-duplication record here; false when the caller does it
    (:func:`forget_queued`) after handing the work on, off the latency path.
    """
    claimed_at = ids.utcnow()
    if not delivery_ids:
        return []
    # Claim and load in one transaction: one round trip and one commit on PostgreSQL,
    # where each round trip costs more than the SQL it carries (the latency path).
    try:
        if state.db.session.get_bind().dialect.name == "postgresql":
            works = _claim_and_load(state, delivery_ids, claimed_at)
        else:
            claimed = claim(state, delivery_ids, now=claimed_at, commit=False)
            works = load(state, claimed, claimed_at=claimed_at)
            if not claimed:
                state.db.session.commit()  # load() had nothing to read: end the claim's transaction
    except Exception:
        state.db.session.rollback()  # the claims go with it: nothing is left sending unsent
        raise
    if forget:
        forget_queued(state, delivery_ids)
    finish_skipped(state, works)
    return works


def forget_queued(state: WebhooksState, delivery_ids: Sequence[str]) -> None:
    """Clear the de-duplication record of claimed ``delivery_ids``; never raises."""
    try:
        dispatch.forget(state, list(delivery_ids))
    except Exception:  # only the de-duplication record; the sweep tolerates a stale one
        log.warning("trakkr_webhooks: could not clear the queue record of %d deliveries", len(delivery_ids))
