"""The per-delivery work: claim, build, send, record, then retry or finish.

Three layers, so one delivery can be processed alone and many can run at once:

* :func:`claim` atomically moves deliveries to ``sending`` (a conditional UPDATE:
  two jobs never send the same delivery at once) and numbers the attempt;
* :func:`perform` builds the request with :mod:`message`, sends it through the SSRF
  guard's pinned session (timeout, no redirects) and applies :func:`retry.decide`;
  it touches no database, so it runs on any thread;
* :func:`record` writes attempts and the deliveries' new states (succeeded, failed, or
  ``retrying`` with a job handed to RQ's scheduler), many in one transaction;
  :func:`attempt` is perform + record for one delivery;
* :func:`process_batch` (the RQ job :func:`run_batch`) claims a batch in one statement
  and runs :func:`perform` for each on a bounded thread pool (``CONCURRENCY``), never
  more than ``PER_HOST_CONCURRENCY`` at once to one host; the job's own thread (with
  the app context and its database session) records finished attempts in groups.

A delivery whose webhook is deleted or inactive ends quietly as ``cancelled``.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa

from . import dispatch, health, ids, message, retry, ssrf
from .models import CANCELLED, FAILED, PENDING, QUEUED, RETRYING, SENDING, SUCCEEDED

log = logging.getLogger("flask_trakkr_webhooks")

#: A retry job may start this early (clock differences between hosts) and still claim.
EARLY_TOLERANCE = timedelta(milliseconds=500)
#: Longest error message kept on an attempt.
MAX_ERROR_CHARS = 1000


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

    @property
    def host(self) -> str:
        """``host:port`` of the endpoint: the unit of the per-host concurrency cap."""
        if self.endpoint is None:
            return ""
        try:
            parts = urlsplit(self.endpoint.url)
            return f"{parts.hostname}:{parts.port or ''}"
        except ValueError:
            return self.endpoint.url


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


# -- resources per process -----------------------------------------------------------------


def http_session(state: Any) -> requests.Session:
    """This process's delivery session: pinned to vetted addresses, no cookies, no redirects, keep-alive."""
    settings = state.settings
    return dispatch.per_process(
        state,
        "http",
        lambda: ssrf.pinned_session(pool_connections=max(64, settings.concurrency),
                                    pool_maxsize=max(settings.per_host_concurrency, 1)),
    )


def executor(state: Any) -> ThreadPoolExecutor:
    """This process's delivery threads (``CONCURRENCY`` of them)."""
    return dispatch.per_process(
        state,
        "executor",
        lambda: ThreadPoolExecutor(max_workers=state.settings.concurrency, thread_name_prefix="trakkr-delivery"),
    )


# -- claiming ------------------------------------------------------------------------------------


def _claimable(D: Any, now: datetime, stuck_after: float) -> Any:
    return sa.or_(
        D.status.in_((PENDING, QUEUED)),
        sa.and_(D.status == RETRYING,
                sa.or_(D.next_attempt_at.is_(None), D.next_attempt_at <= now + EARLY_TOLERANCE)),
        # A claim older than STUCK_AFTER belongs to a worker that died mid-attempt.
        sa.and_(D.status == SENDING, D.claimed_at <= now - timedelta(seconds=stuck_after)),
    )


def claim(state: Any, delivery_ids: Sequence[str], *, now: datetime | None = None) -> dict[str, int]:
    """Move the claimable ones of ``delivery_ids`` to ``sending``; return ``{id: attempt number}``.

    One conditional ``UPDATE ... RETURNING`` (per-row compare-and-set where the database
    has no RETURNING), committed at once so other workers see the claim.
    """
    if not delivery_ids:
        return {}
    now = now or ids.utcnow()
    session = state.db.session
    D = state.models.Delivery
    table = D.__table__
    where = sa.and_(D.id.in_(list(delivery_ids)), D.is_test.is_(False),
                    _claimable(D, now, state.settings.stuck_after))
    values = dict(status=SENDING, claimed_at=now, updated_at=now, attempt_count=table.c.attempt_count + 1)
    claimed: dict[str, int] = {}
    try:
        if session.get_bind().dialect.update_returning:
            rows = session.execute(table.update().where(where).values(**values)
                                   .returning(table.c.id, table.c.attempt_count)).all()
            claimed = {row.id: row.attempt_count for row in rows}
        else:  # pragma: no cover - every supported database has RETURNING
            for row in session.execute(sa.select(D.id, D.attempt_count).where(where)).all():
                done = session.execute(table.update().where(table.c.id == row.id,
                                                            table.c.attempt_count == row.attempt_count, where)
                                       .values(**values))
                if done.rowcount == 1:
                    claimed[row.id] = row.attempt_count + 1
        session.commit()
    except Exception:
        session.rollback()
        raise
    return claimed


#: The webhook columns a delivery needs (:func:`endpoint_of` and the skip checks).
_ENDPOINT_COLUMNS = ("url", "provider", "template", "auth_type", "auth_token", "auth_username", "auth_password",
                     "api_key_header", "api_key_value", "signing_secret", "previous_signing_secret",
                     "previous_secret_expires_at", "headers", "active", "deleted_at")


def load(state: Any, claimed: Mapping[str, int], *, now: datetime | None = None) -> list[Work]:
    """The :class:`Work` of claimed deliveries (two queries), with credentials in plain text.

    Plain rows, no ORM objects, and each event's payload read and decoded once: a batch
    is mostly one event's fan-out, and this runs on the worker's job thread between
    batches (ORM objects cost about twice the CPU here).
    """
    if not claimed:
        return []
    now = now or ids.utcnow()
    m = state.models
    session = state.db.session
    D, W = m.Delivery, m.Webhook.__table__
    rows = session.execute(
        sa.select(D.id, D.is_test, D.event_id, W.c.id.label("webhook_id"), *(W.c[name] for name in _ENDPOINT_COLUMNS))
        .join(W, W.c.id == D.webhook_id)
        .where(D.id.in_(list(claimed)))
    ).all()
    E = m.Event
    events = {row.id: row for row in session.execute(
        sa.select(E.id, E.type, E.payload).where(E.id.in_({row.event_id for row in rows}))).all()} if rows else {}
    max_attempts = 1 + len(state.settings.retry_delays)
    endpoints: dict[str, message.Endpoint] = {}
    out = []
    for row in rows:
        number = claimed[row.id]
        event = events[row.event_id]
        skip = None
        endpoint = None
        if row.deleted_at is not None:
            skip = (CANCELLED, "the webhook was deleted")
        elif not row.active:
            skip = (CANCELLED, "the webhook is inactive")
        elif number > max_attempts:
            skip = (FAILED, f"gave up: the worker stopped during attempt {number - 1} of {max_attempts}")
        else:
            endpoint = endpoints.get(row.webhook_id)
            if endpoint is None:
                endpoint = endpoints[row.webhook_id] = endpoint_of(row, now)
        out.append(Work(delivery_id=row.id, attempt=number, event_id=row.event_id, event_type=event.type,
                        payload=event.payload, is_test=row.is_test, endpoint=endpoint, skip=skip,
                        webhook_id=row.webhook_id))
    _record_lost_attempts(state, claimed, now)
    session.commit()  # end the transaction before the slow part
    return out


def _record_lost_attempts(state: Any, claimed: Mapping[str, int], now: datetime) -> None:
    """Put attempts on record that a dead worker started but never recorded.

    A claim taken over from a worker that died mid-attempt skips that attempt's number;
    the log gets an attempt saying its outcome is unknown, so every attempt is listed.
    """
    retaken = [d for d, number in claimed.items() if number > 1]
    if not retaken:
        return
    A = state.models.Attempt
    session = state.db.session
    recorded = dict(session.execute(
        sa.select(A.delivery_id, sa.func.max(A.number)).where(A.delivery_id.in_(retaken)).group_by(A.delivery_id)
    ).all())
    for delivery_id in retaken:
        for number in range((recorded.get(delivery_id) or 0) + 1, claimed[delivery_id]):
            session.add(A(
                id=ids.new_id(ids.ATTEMPT), delivery_id=delivery_id, number=number, started_at=now,
                outcome=retry.RETRY, error_type="WorkerLost",
                error_message="the worker stopped during this attempt (killed or crashed); "
                              "whether the endpoint received it is unknown",
            ))


def endpoint_of(hook: Any, now: datetime) -> message.Endpoint:
    """The :class:`message.Endpoint` of a webhook row (credentials decrypted by their column type)."""
    previous = None
    expires = ids.as_utc(getattr(hook, "previous_secret_expires_at", None))
    if hook.previous_signing_secret and expires is not None and expires > now:
        previous = hook.previous_signing_secret
    return message.Endpoint(
        url=hook.url, provider=hook.provider or "webhook", template=hook.template, auth_type=hook.auth_type or "none",
        auth_token=hook.auth_token, auth_username=hook.auth_username, auth_password=hook.auth_password,
        api_key_header=hook.api_key_header, api_key_value=hook.api_key_value, signing_secret=hook.signing_secret,
        previous_signing_secret=previous, headers=dict(hook.headers or {}),
    )


# -- one attempt ----------------------------------------------------------------------------------


@dataclass
class _Answer:
    status_code: int | None = None
    headers: dict[str, str] | None = None
    body: str | None = None
    error: str | None = None        # a retry.ERROR_KINDS value
    error_type: str | None = None
    error_message: str | None = None


def _read_limited(response: requests.Response, limit: int) -> str:
    chunks, size = [], 0
    if limit > 0:
        for chunk in response.iter_content(chunk_size=min(limit, 16384)):
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
    return b"".join(chunks)[:limit].decode("utf-8", "replace")


def send(state: Any, msg: message.Message) -> _Answer:
    """POST ``msg`` once, through the SSRF guard, with the configured timeout; never raises."""
    settings = state.settings
    answer = _Answer()
    try:
        prepared = requests.Request("POST", msg.url, data=msg.body, headers=msg.headers).prepare()
        response = ssrf.safe_send(http_session(state), prepared, timeout=settings.timeout, stream=True,
                                  **ssrf.settings_kwargs(settings))
    except requests.Timeout as exc:
        answer.error = retry.TIMEOUT
        _error(answer, exc)
    except ssrf.UnresolvableHost as exc:  # DNS outages are transient
        answer.error = retry.CONNECTION
        _error(answer, exc)
    except requests.ConnectionError as exc:
        answer.error = retry.CONNECTION
        _error(answer, exc)
    except (ssrf.SSRFError, requests.RequestException, ValueError) as exc:  # blocked, malformed: permanent
        answer.error = retry.PERMANENT
        _error(answer, exc)
    else:
        with response:
            answer.status_code = response.status_code
            answer.headers = dict(response.headers)
            try:
                answer.body = _read_limited(response, settings.response_body_limit)
            except (requests.RequestException, OSError) as exc:  # the status stands; note the body error
                answer.body = None
                _error(answer, exc)
    return answer


def _error(answer: _Answer, exc: BaseException) -> None:
    answer.error_type = type(exc).__name__
    answer.error_message = str(exc)[:MAX_ERROR_CHARS] or type(exc).__name__


@dataclass(frozen=True)
class Outcome:
    """One attempt as it happened, not yet recorded."""

    work: Work
    answer: _Answer
    decision: retry.Decision
    started: datetime
    finished: datetime
    duration_ms: float


def perform(state: Any, work: Work) -> Outcome:
    """Build and send one attempt of a claimed delivery and decide what follows (no database).

    Safe to run on any thread. Test deliveries are never retried.
    """
    settings = state.settings
    started = ids.utcnow()
    clock = time.perf_counter()
    assert work.endpoint is not None
    try:
        msg = message.build(work.endpoint, work.payload, delivery_id=work.delivery_id,
                            timestamp=int(started.timestamp()))
    except ValueError as exc:  # MessageError, TemplateError: the webhook cannot be sent as configured
        answer = _Answer(error=retry.PERMANENT)
        _error(answer, exc)
    else:
        answer = send(state, msg)
    duration_ms = round((time.perf_counter() - clock) * 1000.0, 3)
    finished = ids.utcnow()
    decision = retry.decide(
        attempt=work.attempt, delays=settings.retry_delays, status_code=answer.status_code, error=answer.error,
        retry_after=(answer.headers or {}).get("Retry-After"), max_retry_after=settings.max_retry_after, now=finished,
    )
    if work.is_test and decision.retry:
        # Drop the "; retry 1 of 3" part: it would promise a retry that never comes.
        what = decision.reason.partition(";")[0]
        decision = retry.Decision(retry.FAILED, reason=f"{what} (test deliveries are not retried)")
    return Outcome(work, answer, decision, started, finished, duration_ms)


def record(state: Any, outcomes: Sequence[Outcome]) -> list[Result]:
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
        next_at = o.finished + timedelta(seconds=decision.delay) if decision.retry else None
        status = {retry.SUCCEEDED: SUCCEEDED, retry.RETRY: RETRYING}.get(decision.outcome, FAILED)
        problem = f"{answer.error_type}: {answer.error_message}" if answer.error else decision.reason
        attempts.append(dict(
            id=ids.new_id(ids.ATTEMPT), delivery_id=work.delivery_id, number=work.attempt, started_at=o.started,
            duration_ms=o.duration_ms, status_code=answer.status_code, outcome=decision.outcome,
            error_type=answer.error_type, error_message=answer.error_message, response_headers=answer.headers,
            response_body=answer.body, next_retry_at=next_at,
        ))
        updates.append(dict(
            b_id=work.delivery_id, b_number=work.attempt, status=status, last_status_code=answer.status_code,
            last_error=None if status == SUCCEEDED else problem, next_attempt_at=next_at, updated_at=o.finished,
            completed_at=None if decision.retry else o.finished,
        ))
        results.append(Result(
            delivery_id=work.delivery_id, attempt=work.attempt, outcome=decision.outcome, status=status,
            status_code=answer.status_code, duration_ms=o.duration_ms, error_type=answer.error_type,
            error_message=None if status == SUCCEEDED else (answer.error_message if answer.error else problem),
            next_attempt_at=next_at,
        ))
        if next_at is not None:
            retries.append((work.delivery_id, next_at))
        elif work.webhook_id is not None and not work.is_test:
            finished.append(health.Finished(
                webhook_id=work.webhook_id, delivery_id=work.delivery_id, succeeded=status == SUCCEEDED,
                at=o.finished, status_code=answer.status_code, error=problem))
    table = m.Delivery.__table__
    try:
        session.execute(sa.insert(m.Attempt.__table__), attempts)
        session.execute(
            table.update()
            .where(table.c.id == sa.bindparam("b_id"), table.c.status == SENDING,
                   table.c.attempt_count == sa.bindparam("b_number"))
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


def attempt(state: Any, work: Work) -> Result:
    """Build, send and record one attempt of a claimed delivery (needs an app context)."""
    return record(state, [perform(state, work)])[0]


def finish_skipped(state: Any, works: Iterable[Work]) -> None:
    """End claimed deliveries that will not be sent (``cancelled`` / ``failed``), in one transaction."""
    works = [w for w in works if w.skip]
    if not works:
        return
    now = ids.utcnow()
    table = state.models.Delivery.__table__
    session = state.db.session
    for work in works:
        status, reason = work.skip  # type: ignore[misc]
        session.execute(
            table.update()
            .where(table.c.id == work.delivery_id, table.c.status == SENDING, table.c.attempt_count == work.attempt)
            # A cancelled or abandoned claim is not an attempt: give its number back.
            .values(status=status, last_error=reason, updated_at=now, completed_at=now, next_attempt_at=None,
                    attempt_count=table.c.attempt_count - 1)
        )
    session.commit()


# -- many at once --------------------------------------------------------------------------------


def run_bounded(
    items: Sequence[Work],
    func: Callable[[Work], Outcome],
    *,
    pool: ThreadPoolExecutor,
    concurrency: int,
    per_host: int,
    flush_after: float = 0.02,
    flush_size: int = 64,
) -> Iterator[list[Outcome]]:
    """Run ``func`` over ``items`` on ``pool`` (at most ``concurrency`` at once, ``per_host`` per
    host); yield the finished outcomes in small groups, for recording together.

    Hosts are served round-robin, so one busy endpoint cannot hold every thread while
    deliveries to other endpoints wait. A group is yielded once ``flush_size`` outcomes
    are ready, ``flush_after`` seconds after the first of them, or at the end. An
    attempt that raised (a bug) is logged and left out: its delivery stays ``sending``
    until the sweep re-enqueues it.
    """
    queues: dict[str, deque[Work]] = {}
    for item in items:
        queues.setdefault(item.host, deque()).append(item)
    running: dict[Future, Work] = {}
    per: dict[str, int] = {}
    ready: list[Outcome] = []
    first_ready = 0.0
    while queues or running:
        for host in list(queues):
            backlog = queues[host]
            while backlog and len(running) < concurrency and per.get(host, 0) < per_host:
                work = backlog.popleft()
                running[pool.submit(func, work)] = work
                per[host] = per.get(host, 0) + 1
            if not backlog:
                del queues[host]
        timeout = None if not ready else max(0.0, first_ready + flush_after - time.monotonic())
        done, _ = wait(list(running), timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            work = running.pop(future)
            per[work.host] -= 1
            try:
                outcome = future.result()
            except Exception:
                log.exception("trakkr_webhooks: attempt %d of %s failed unexpectedly", work.attempt,
                              work.delivery_id)
                continue
            if not ready:
                first_ready = time.monotonic()
            ready.append(outcome)
        if ready and (len(ready) >= flush_size or not running or time.monotonic() >= first_ready + flush_after):
            yield ready
            ready = []


def prepare(state: Any, delivery_ids: Sequence[str]) -> list[Work]:
    """Claim ``delivery_ids``, load what will be sent, and end those that will not."""
    claimed = claim(state, delivery_ids)
    try:
        dispatch.forget(state, list(delivery_ids))
    except Exception:  # only the de-duplication record; the sweep tolerates a stale one
        log.warning("trakkr_webhooks: could not clear the queue record of %d deliveries", len(delivery_ids))
    works = load(state, claimed)
    finish_skipped(state, works)
    return works


def process_batch(state: Any, delivery_ids: Sequence[str]) -> dict[str, int]:
    """Claim ``delivery_ids`` and attempt each one concurrently; return counts by status.

    Needs an app context: this thread claims and records (a few statements per group of
    finished attempts); the pool's threads only build and send. Deliveries that are not
    claimable (already sent, claimed by another worker, cancelled) are skipped quietly.
    """
    works = prepare(state, delivery_ids)
    todo = [w for w in works if not w.skip]
    counts = {"claimed": len(works), "skipped": len(works) - len(todo)}
    settings = state.settings
    if len(todo) == 1:
        groups: Iterable[list[Outcome]] = [[perform(state, todo[0])]]
    else:
        groups = run_bounded(todo, lambda work: perform(state, work), pool=executor(state),
                             concurrency=settings.concurrency, per_host=settings.per_host_concurrency)
    for group in groups:
        try:
            results = record(state, group)
        except Exception:  # left `sending`: the sweep re-enqueues them after STUCK_AFTER
            log.exception("trakkr_webhooks: could not record %d attempts", len(group))
            counts["error"] = counts.get("error", 0) + len(group)
            continue
        for result in results:
            counts[result.status] = counts.get(result.status, 0) + 1
    return counts


def process_delivery(delivery_id: str) -> Result | None:
    """Claim and attempt one delivery in the current app context, without the thread pool.

    Returns ``None`` when it was not claimable or ended without an attempt (cancelled).
    """
    from .extension import get_state

    state = get_state()
    todo = [w for w in prepare(state, [delivery_id]) if not w.skip]
    return attempt(state, todo[0]) if todo else None


def run_batch(delivery_ids: list[str]) -> dict[str, int]:
    """The RQ job: deliver a batch of deliveries. Runs inside the host app's context.

    Under :class:`worker.DeliveryWorker` the batch is handed to the process's
    :class:`engine.Engine` (the job returns once every delivery is sending); elsewhere it
    runs to completion here.

    The worker binds it: ``flask webhooks worker``, or ``rq worker -j
    flask_trakkr_webhooks.worker.FlaskJob`` with ``TRAKKR_WEBHOOKS_APP`` / ``FLASK_APP``.
    """
    from flask import current_app, has_app_context

    from .extension import get_state

    if not has_app_context():
        raise RuntimeError(
            "flask_trakkr_webhooks jobs need the host app's context: run `flask --app HOST webhooks worker`, "
            "or `rq worker --with-scheduler -j flask_trakkr_webhooks.worker.FlaskJob QUEUE` with "
            "TRAKKR_WEBHOOKS_APP=HOST (or FLASK_APP) set"
        )
    from . import engine

    state = get_state(current_app._get_current_object())
    running = engine.current(state)
    if running is not None:  # our worker: hand off and take the next job at once
        return engine.run(running, list(delivery_ids))
    return process_batch(state, list(delivery_ids))
