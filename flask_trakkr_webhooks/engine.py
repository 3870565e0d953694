"""Deliveries in flight: the one scheduler of attempts (limits, round-robin hosts, recording).

Under :class:`worker.DeliveryWorker` a job does not wait for its slowest delivery: it
claims its batch, hands the deliveries to this process's :class:`Engine` and returns as
soon as every one of them is *sending*, so the worker takes the next job while
attempts of earlier jobs are still in flight. That keeps up to ``CONCURRENCY``
deliveries in flight at all times instead of draining to zero at the end of each job.

* **Limits**: at most ``CONCURRENCY`` attempts at once, ``PER_HOST_CONCURRENCY`` per
  host. Claimed deliveries whose host is full wait in a backlog; a job waits
  (back-pressure: the worker takes no new job) while more than ``CONCURRENCY`` are
  waiting, or more than ``PER_HOST_CONCURRENCY`` for one host. Hosts are served
  round-robin.
* **Pacing** (:mod:`.pacing`, :mod:`.ratelimit`): a delivery whose endpoint has a rate limit
  waits in that endpoint's line, not in a sending thread. One pacer thread per engine asks
  the shared budget (Redis) for the head of each line when it may be due; a granted delivery
  joins the backlog at the front, a refused one is asked again when the budget says, and
  deliveries that would wait longer than ``PACING_HOLD`` are handed back to the queue until
  then (:func:`record.release`: nothing sent, no attempt used). So a paced endpoint never
  holds up another endpoint's deliveries, and no thread sleeps on its behalf. A ``429``
  (or a ``Retry-After`` 503, or ``X-RateLimit-Remaining: 0``) holds the endpoint for every
  worker for as long as it said.
* **Recording**: one recorder thread (with its own app context and database session)
  writes finished attempts in groups (:func:`record.record`), so database work does
  not grow with the number of sending threads. An engine made with ``recorder=False``
  (:func:`run_to_completion`) leaves recording to its caller's thread instead.
* **One bad delivery fails alone**: a delivery that cannot be prepared (its ``problem``,
  e.g. an undecryptable credential) or whose build or send raises (a host formatter or
  a template that raises) ends ``failed`` with a recorded attempt naming the reason
  (:func:`attempt_or_fail`); a group that cannot be recorded is recorded one by one, so a
  row that breaks the write (deleted meanwhile) affects itself alone.
* **Never a stale claim**: a delivery still waiting ``STUCK_AFTER`` after its claim is not
  sent (the sweep may already have handed it to another worker); it is left ``sending`` for
  the sweep, whose fresh claim reads the webhook as it is then.
* **Shutdown**: the worker drains the engine (waits for attempts in flight and their
  records) before it exits. A worker killed outright leaves its deliveries ``sending``;
  the sweep re-enqueues them after ``STUCK_AFTER``.

Elsewhere (a plain ``rq worker`` forking a child per job, tests) a job runs its batch to
completion with :func:`run_to_completion`: the same scheduler, recorded by the job's thread.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import Flask

from . import ids, metrics, pacing, ratelimit, retry
from .attempt import MAX_ERROR_CHARS, Answer, Outcome, http_client, perform
from .claim import Work, forget_queued, prepare
from .record import Release, Result, record, release
from .state import WebhooksState, get_state

log = logging.getLogger("flask_trakkr_webhooks")

#: Seconds the recorder waits to fill a group before writing it. Each group costs a few
#: milliseconds of CPU whatever its size (three statements and a commit), so groups of
#: ~30 instead of ~6 at 300 deliveries/s halve the recording CPU per delivery; a
#: delivery just stays ``sending`` that much longer (under load: once nothing is in
#: flight the group is written at once).
RECORD_WAIT = 0.1
#: While filling a group, how often the recorder takes what arrived and checks whether the engine went idle.
RECORD_POLL = 0.01
#: Most attempts written in one transaction.
RECORD_GROUP = 128
#: Seconds past ``2 * TIMEOUT`` a paced delivery's send slot may stay in flight. A granted
#: delivery goes first in its host's line, so it waits for at most about one attempt to that
#: host, then makes its own: a slot whose worker was killed meanwhile counts as answered then
#: (:func:`.ratelimit.acquire`'s ``sending_for``).
PACE_SLACK = 5.0


def failed_outcome(work: Work, error_type: str, message: str, *, started: datetime | None = None) -> Outcome:
    """A permanent failure of ``work`` that sent nothing (recorded like any attempt)."""
    finished = ids.utcnow()
    started = started or finished
    message = message[:MAX_ERROR_CHARS] or error_type
    answer = Answer(error=retry.PERMANENT, error_type=error_type, error_message=message)
    decision = retry.Decision(retry.FAILED, reason=f"{error_type}: {message}")
    duration_ms = round((finished - started).total_seconds() * 1000.0, 3)
    return Outcome(work, answer, decision, started, finished, duration_ms)


def attempt_or_fail(state: WebhooksState, work: Work) -> Outcome:
    """:func:`attempt.perform`, except that a delivery which cannot be prepared, built or sent
    fails permanently with the reason instead of raising (no database; any thread)."""
    if work.problem is not None:
        return failed_outcome(work, *work.problem)
    started = ids.utcnow()
    try:
        return perform(state, work)
    except Exception as exc:  # a formatter, template or bug: this delivery alone fails, on record
        log.warning(
            "trakkr_webhooks: attempt %d of %s could not be made: %r",
            work.attempt,
            work.delivery_id,
            exc,
            exc_info=True,
        )
        return failed_outcome(
            work, type(exc).__name__, f"the request could not be built or sent: {exc}", started=started
        )


def _is_paced(work: Work) -> bool:
    """Whether ``work`` waits for a send slot of its endpoint's budget before it is sent."""
    return bool(work.rate_limit) and work.endpoint is not None and work.problem is None


class Engine:
    """Deliveries in flight for one app in one process (see the module docstring)."""

    def __init__(self, app: Flask | None, state: WebhooksState, *, recorder: bool = True) -> None:
        if recorder and app is None:
            raise ValueError("an engine with a recorder thread needs the app (for its app context)")
        self.app = app
        self.state = state
        settings = state.settings
        self.concurrency = settings.concurrency
        self.per_host = settings.per_host_concurrency
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="trakkr-send")
        self._cond = threading.Condition()
        self._running = 0
        self._hosts: dict[str, int] = {}
        #: Claimed deliveries not started yet, per host (insertion order = round-robin order).
        self._backlog: dict[str, deque[Work]] = {}
        self._waiting = 0
        self._unrecorded = 0
        self._outcomes: queue.SimpleQueue[Outcome | Release | None] = queue.SimpleQueue()
        self._recorder: threading.Thread | None = None
        self._stopping = False
        #: Paced deliveries not granted a send slot yet, in line per endpoint budget key.
        self._paced: dict[str, deque[Work]] = {}
        #: When each line's head is asked next: a heap of (monotonic time, tie-break, key),
        #: and the current time per key (heap entries that disagree are stale).
        self._due: list[tuple[float, int, str]] = []
        self._due_at: dict[str, float] = {}
        self._seq = itertools.count()
        self._pacer: threading.Thread | None = None
        #: When the deliveries handed back to the queue per endpoint are due (monotonic).
        self._handed_back: dict[str, list[float]] = {}
        # A claim held longer than STUCK_AFTER is not sent: hold well within it.
        self.pacing_hold = min(settings.pacing_hold, settings.stuck_after / 2)
        self.slot_deadline = 2 * settings.timeout + PACE_SLACK
        http_client(state)  # created once, before any sending thread needs it
        if settings.metrics:
            metrics.track_in_flight(self)
        if recorder:
            self._recorder = threading.Thread(target=self._record_loop, name="trakkr-record", daemon=True)
            self._recorder.start()

    # -- submitting ------------------------------------------------------------------------

    def submit(self, works: Sequence[Work]) -> None:
        """Queue an attempt for each of ``works``; return once the backlog is short.

        Short means at most ``CONCURRENCY`` attempts waiting in all and at most
        ``PER_HOST_CONCURRENCY`` waiting for any one host: the worker then claims its
        next job while these are still being sent, so slots freed meanwhile find work
        (waiting for *every* delivery to start left them idle during each claim). A
        delivery waits at most one more wave of its host than a job's own backlog.
        """
        with self._cond:
            ready = 0
            for work in works:
                if _is_paced(work):
                    self._pace(work)
                    continue
                self._backlog.setdefault(work.host, deque()).append(work)
                ready += 1
            self._waiting += ready
            self._unrecorded += len(works)
            self._start_waiting()
            while self._waiting > self.concurrency or any(len(w) > self.per_host for w in self._backlog.values()):
                self._cond.wait(1.0)

    # -- pacing ------------------------------------------------------------------------------

    def _pace(self, work: Work) -> None:
        """Put ``work`` in its endpoint's line (holding the lock); start the pacer if needed."""
        line = self._paced.get(work.pace_key)
        if line is None:
            line = self._paced[work.pace_key] = deque()
            self._schedule(work.pace_key, time.monotonic())
        line.append(work)
        if self._pacer is None:
            self._pacer = threading.Thread(target=self._pace_loop, name="trakkr-pace", daemon=True)
            self._pacer.start()
        self._cond.notify_all()

    def _schedule(self, key: str, when: float) -> None:
        self._due_at[key] = when
        heapq.heappush(self._due, (when, next(self._seq), key))

    def _next_due(self) -> tuple[str, Work] | None:
        """Wait for the next line whose head is due; ``None`` once stopping (holding the lock)."""
        while not self._stopping:
            now = time.monotonic()
            while self._due and self._due_at.get(self._due[0][2]) != self._due[0][0]:
                heapq.heappop(self._due)  # stale: rescheduled since
            if self._due and self._due[0][0] <= now:
                _, _, key = heapq.heappop(self._due)
                del self._due_at[key]
                line = self._paced.get(key)
                if line:
                    return key, line[0]
                self._paced.pop(key, None)
                continue
            self._cond.wait(self._due[0][0] - now if self._due else None)
        return None

    def _pace_loop(self) -> None:
        while True:
            with self._cond:
                due = self._next_due()
            if due is None:
                return
            key, head = due
            try:
                wait = ratelimit.acquire(self.state, key, head.rate_limit, head.slot, self.slot_deadline)
            except Exception:  # never let the pacer die: send rather than strand the line
                log.exception("trakkr_webhooks: pacing of %s failed; sending without it", head.delivery_id)
                wait = 0.0
            releases: list[Release] = []
            unsent = False
            with self._cond:
                line = self._paced.get(key)
                if not line or line[0] is not head:  # flushed by stop() meanwhile
                    unsent = wait <= 0  # granted a slot it will not use here
                elif wait <= 0:
                    line.popleft()
                    now = time.monotonic()
                    if line:
                        self._schedule(key, now)
                    else:
                        del self._paced[key]
                    # It holds a slot of its budget now: first in its host's line.
                    self._backlog.setdefault(head.host, deque()).appendleft(head)
                    self._waiting += 1
                    self._start_waiting()
                else:
                    now = time.monotonic()
                    releases = self._release_far(key, line, wait)
                    if line:
                        self._schedule(key, now + wait)
                    else:
                        del self._paced[key]
                self._cond.notify_all()
            if unsent:
                self._give_back(head)
            for item in releases:
                self._outcomes.put(item)

    def _release_far(self, key: str, line: deque[Work], wait: float) -> list[Release]:
        """Take out of ``line`` the deliveries expected to wait longer than ``PACING_HOLD``
        (the head ``wait`` seconds, the others :func:`.pacing.eta` more), each to be handed
        back to the queue for its expected time (holding the lock)."""
        limit = line[0].rate_limit
        now, clock = ids.utcnow(), time.monotonic()
        # Deliveries of this endpoint handed back earlier and not due yet are ahead in line.
        due = [t for t in self._handed_back.get(key, ()) if t > clock]
        ahead = len(due)
        kept: deque[Work] = deque()
        out: list[Release] = []
        for i, work in enumerate(line):
            eta = wait + pacing.eta(limit, ahead + i)
            if eta > self.pacing_hold:
                out.append(Release(work, now + timedelta(seconds=eta)))
                due.append(clock + eta)
            else:
                kept.append(work)
        if due:
            self._handed_back[key] = due
        else:
            self._handed_back.pop(key, None)
        line.clear()
        line.extend(kept)
        return out

    def _flush_paced(self) -> None:
        """Hand every delivery still in a pacing line back to the queue (shutdown)."""
        now = ids.utcnow()
        with self._cond:
            works = [w for line in self._paced.values() for w in line]
            self._paced.clear()
            self._due.clear()
            self._due_at.clear()
        for work in works:
            self._outcomes.put(Release(work, now))

    def _after_answer(self, outcome: Outcome) -> None:
        """Share what the endpoint said about its budget: a deferral, or none left for a while."""
        work = outcome.work
        if not work.rate_limit:
            return
        seconds = outcome.decision.delay if outcome.decision.deferred else None
        if seconds is None:
            seconds = pacing.remaining_hold(outcome.answer.headers)
        if seconds:
            try:
                ratelimit.hold(self.state, work.pace_key, seconds)
            except Exception:
                log.exception("trakkr_webhooks: could not hold endpoint budget for %s", work.delivery_id)

    def _give_back(self, work: Work) -> None:
        """A paced delivery's request is answered (or was not sent): its slot counts from now."""
        if not _is_paced(work):
            return
        try:
            ratelimit.sent(self.state, work.pace_key, work.rate_limit, work.slot)
        except Exception:
            log.exception("trakkr_webhooks: could not give back the send slot of %s", work.delivery_id)

    def _start_waiting(self) -> None:
        """Hand waiting attempts to idle threads while slots are free (holding the lock)."""
        while (work := self._take_next()) is not None:
            self._pool.submit(self._run, work)

    def _take_next(self) -> Work | None:
        """The next waiting attempt that may start now, its slot taken (holding the lock).

        Hosts round-robin: the host served goes to the back of the line.
        """
        if self._stopping or self._running >= self.concurrency:
            return None
        for host in self._backlog:
            if self._hosts.get(host, 0) < self.per_host:
                waiting = self._backlog.pop(host)
                work = waiting.popleft()
                if waiting:
                    self._backlog[host] = waiting
                self._waiting -= 1
                self._running += 1
                self._hosts[host] = self._hosts.get(host, 0) + 1
                return work
        return None

    def _run(self, work: Work | None) -> None:
        # A sending thread goes on with the next waiting attempt itself: no hand-off to
        # another thread (a wake-up and a GIL switch) per attempt.
        while work is not None:
            outcome = None
            try:
                if self._stale(work):
                    log.warning(
                        "trakkr_webhooks: %s waited past STUCK_AFTER after its claim; not sent (left to the sweep)",
                        work.delivery_id,
                    )
                else:
                    outcome = attempt_or_fail(self.state, work)
                    self._after_answer(outcome)
            except Exception:  # only if even the failure cannot be made: `sending` until the sweep
                log.exception("trakkr_webhooks: attempt %d of %s failed unexpectedly", work.attempt, work.delivery_id)
            self._give_back(work)
            with self._cond:
                self._running -= 1
                self._hosts[work.host] -= 1
                if not self._hosts[work.host]:
                    del self._hosts[work.host]
                if outcome is None:
                    self._unrecorded -= 1
                work = self._take_next()
                self._start_waiting()
                self._cond.notify_all()
            if outcome is not None:
                self._outcomes.put(outcome)

    def _stale(self, work: Work) -> bool:
        """Claimed more than ``STUCK_AFTER`` ago: another worker may hold it by now, and it carries
        the webhook as it was then (URL, credentials, secret), so it is left to a fresh claim."""
        if work.claimed_at is None:
            return False
        return (ids.utcnow() - work.claimed_at).total_seconds() > self.state.settings.stuck_after

    # -- recording -------------------------------------------------------------------------

    def _next_group(self, first_timeout: float | None = None) -> list[Outcome | Release] | None:
        """The next group of finished attempts to record; ``None`` once stopped (or after
        ``first_timeout`` seconds without any)."""
        try:
            first = self._outcomes.get(timeout=first_timeout)
        except queue.Empty:
            return None
        if first is None:
            return None
        group: list[Outcome | Release] = [first]
        deadline = time.monotonic() + RECORD_WAIT
        while True:
            # Take what has arrived, then sleep a poll: waiting on the queue woke this
            # thread once per finished attempt (a wake-up and a GIL switch each).
            while len(group) < RECORD_GROUP:
                try:
                    item = self._outcomes.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._outcomes.put(None)  # stop after this group
                    return group
                group.append(item)
            left = deadline - time.monotonic()
            # Nothing being sent or waiting: no more is on its way, write now
            # (read without the lock: a stale answer only splits a group).
            if len(group) >= RECORD_GROUP or left <= 0 or not (self._running or self._waiting):
                return group
            time.sleep(min(left, RECORD_POLL))

    def _record_group(self, group: list[Outcome | Release]) -> list[Result]:
        try:
            releases = [item for item in group if isinstance(item, Release)]
            if releases:
                release_each(self.state, releases)
            outcomes = [item for item in group if isinstance(item, Outcome)]
            return record_each(self.state, outcomes) if outcomes else []
        finally:
            with self._cond:
                self._unrecorded -= len(group)
                self._cond.notify_all()

    def _record_loop(self) -> None:
        assert self.app is not None  # checked in __init__
        with self.app.app_context():
            while (group := self._next_group()) is not None:
                self._record_group(group)

    def record_here(self) -> Iterator[tuple[list[Outcome | Release], list[Result]]]:
        """Record finished attempts on the caller's thread (an engine without a recorder) until
        nothing is in flight; yields each group and its results (an empty list if it failed)."""
        if self._recorder is not None:
            raise RuntimeError("this engine records on its own thread")
        while self.in_flight:
            group = self._next_group(first_timeout=RECORD_POLL)
            if group:
                yield group, self._record_group(group)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Attempts claimed (started or waiting for a slot) and not yet recorded."""
        with self._cond:
            return self._unrecorded

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every claimed attempt is sent and recorded; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._unrecorded:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stop(self, timeout: float) -> None:
        """Finish what is in flight (at most ``timeout`` seconds), then stop the threads."""
        self._flush_paced()
        if not self.wait_idle(timeout):
            log.warning(
                "trakkr_webhooks: %d attempts still in flight at shutdown; the sweep will re-enqueue them",
                self.in_flight,
            )
        with self._cond:
            self._stopping = True  # what still waits stays `sending`: the sweep re-enqueues it
            self._cond.notify_all()
        self._outcomes.put(None)
        if self._recorder is not None:
            self._recorder.join(timeout=5)
        if self._pacer is not None:
            self._pacer.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.state.local.engine is self:
            self.state.local.engine = None


#: Tries of a group's record on a transient database error (SQLite's "database is locked", a
#: dropped connection), and the pause before each retry.
RECORD_RETRY_PAUSES = (0.2, 0.5, 1.0)


def transient(exc: BaseException) -> bool:
    """A database error that says nothing about the rows (locked, disconnected): try again later,
    never fail a delivery for it."""
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError) or (
        isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated
    )


def _record_retrying(state: WebhooksState, group: Sequence[Outcome]) -> list[Result]:
    """:func:`record.record`, tried again after :data:`RECORD_RETRY_PAUSES` on a transient error."""
    for pause in (*RECORD_RETRY_PAUSES, None):
        try:
            return record(state, group)
        except Exception as exc:
            if pause is None or not transient(exc):
                raise
            time.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover - the last pass returns or raises


def release_each(state: WebhooksState, releases: Sequence[Release]) -> None:
    """:func:`record.release`, retried on a transient error; what still cannot be written stays
    ``sending`` (the sweep re-enqueues it after ``STUCK_AFTER``)."""
    for pause in (*RECORD_RETRY_PAUSES, None):
        try:
            release(state, releases)
            return
        except Exception as exc:
            if pause is None or not transient(exc):
                log.error("trakkr_webhooks: could not hand back %d paced deliveries (%r)", len(releases), exc)
                return
            time.sleep(pause)


def record_each(state: WebhooksState, group: Sequence[Outcome]) -> list[Result]:
    """:func:`record.record` of ``group``; if the rows make it fail, each outcome on its own, and
    one that still cannot be written as a permanent failure naming why, so one row never stalls
    a group.

    A transient database error (locked, disconnected) is retried a few times and otherwise
    leaves the group ``sending``: the sweep re-enqueues it after ``STUCK_AFTER`` (it is never
    turned into a failure of the deliveries).
    """
    try:
        return _record_retrying(state, group)
    except Exception as exc:
        if transient(exc):
            log.error("trakkr_webhooks: could not record %d attempts (%r); the sweep will retry them", len(group), exc)
            return []
        log.warning("trakkr_webhooks: could not record %d attempts together (%r); one by one", len(group), exc)
    results: list[Result] = []
    for outcome in group:
        try:
            results.extend(_record_retrying(state, [outcome]))
            continue
        except Exception as exc:
            if transient(exc):
                log.error("trakkr_webhooks: could not record %s (%r); the sweep will", outcome.work.delivery_id, exc)
                continue
            log.warning("trakkr_webhooks: could not record attempt of %s (%r)", outcome.work.delivery_id, exc)
            failure = failed_outcome(
                outcome.work, "RecordError", f"the attempt could not be recorded: {exc}", started=outcome.started
            )
        try:
            results.extend(_record_retrying(state, [failure]))
        except Exception:  # the database is unreachable: `sending` until the sweep
            log.exception(
                "trakkr_webhooks: could not record attempt %d of %s", outcome.work.attempt, outcome.work.delivery_id
            )
    return results


def current(state: WebhooksState) -> Engine | None:
    """The engine of this app in this process, if a :class:`worker.DeliveryWorker` started one."""
    return state.local.engine


def start(app: Flask) -> Engine:
    """Start (or return) the engine of ``app`` in this process."""
    state = get_state(app)
    engine = state.local.engine
    if engine is None:
        engine = state.local.engine = Engine(app, state)
    return engine


def run(engine: Engine, delivery_ids: Sequence[str]) -> dict[str, int]:
    """Claim ``delivery_ids`` and hand them to ``engine``; return once all are sending."""
    works = prepare(engine.state, delivery_ids, forget=False)
    todo = [w for w in works if not w.skip]
    engine.submit(todo)
    forget_queued(engine.state, delivery_ids)  # after the hand-off: a Redis round trip off the latency path
    return {"claimed": len(works), "skipped": len(works) - len(todo), "sending": len(todo)}


def run_to_completion(state: WebhooksState, delivery_ids: Sequence[str]) -> dict[str, int]:
    """Claim ``delivery_ids`` and attempt each one concurrently; return counts by status.

    Needs an app context: this thread claims and records (a few statements per group of
    finished attempts); a short-lived engine's threads only build and send, under the
    same limits as the worker's engine. Deliveries that are not claimable (already sent,
    claimed by another worker, cancelled) are skipped quietly.
    """
    works = prepare(state, delivery_ids)
    todo = [w for w in works if not w.skip]
    counts = {"claimed": len(works), "skipped": len(works) - len(todo)}
    if not todo:
        return counts
    engine = Engine(None, state, recorder=False)
    try:
        # submit() returns while some still wait (back-pressure for the worker's loop);
        # recording here keeps going until every one of them is recorded.
        engine.submit(todo)
        for group, results in engine.record_here():
            paced = sum(isinstance(item, Release) for item in group)
            if paced:
                counts["paced"] = counts.get("paced", 0) + paced
            if not results and len(group) > paced:
                counts["error"] = counts.get("error", 0) + len(group) - paced
            for result in results:
                counts[result.status] = counts.get(result.status, 0) + 1
    finally:
        engine.stop(timeout=0)
    return counts
