"""RQ entry points: the functions jobs name, run in the host app's context.

The delivery path, one way down from here: :func:`run_batch` -> :func:`claim.prepare`
(atomic claim, load) -> :mod:`engine` (the one scheduler) -> :func:`attempt.perform` (build
and send, no database) -> :func:`record.record` (attempts, states, health, retries).

:data:`dispatch.JOB_FUNC` is the path stored in each job (this module's :func:`run_batch`).
Jobs enqueued by earlier versions name ``flask_trakkr_webhooks.delivery.run_batch``; that
module is kept as an alias.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from flask import current_app, has_app_context

from . import engine
from .claim import Work, prepare
from .record import Result, record
from .state import WebhooksState, get_state
from .worker import APP_ENV_VARS, load_app


def run_batch(delivery_ids: list[str]) -> dict[str, int]:
    """The RQ job: deliver a batch of deliveries. Runs inside the host app's context.

    Under :class:`worker.DeliveryWorker` the batch is handed to the process's
    :class:`engine.Engine` (the job returns once every delivery is sending); elsewhere it
    runs to completion here.

    The worker binds it: ``flask webhooks worker``, or ``rq worker -j
    flask_trakkr_webhooks.worker.FlaskJob``. Under a plain ``rq worker`` (no app context)
    the job loads the host app named by ``TRAKKR_WEBHOOKS_APP`` or ``FLASK_APP`` itself;
    without either it fails in one line, and its deliveries stay open for the sweep of the
    next worker that has the app (or ``flask webhooks dispatch``).
    """
    if not has_app_context():
        if not any(os.environ.get(name) for name in APP_ENV_VARS):
            raise RuntimeError(
                "flask_trakkr_webhooks jobs need the host app: set FLASK_APP (or TRAKKR_WEBHOOKS_APP) to it, "
                "e.g. FLASK_APP='myapp:create_app()', or run `flask --app HOST webhooks worker`"
            )
        with load_app().app_context():
            return run_batch(delivery_ids)
    state = get_state(current_app._get_current_object())  # type: ignore[attr-defined]  # werkzeug LocalProxy
    running = engine.current(state)
    if running is not None:  # our worker: hand off and take the next job at once
        return engine.run(running, list(delivery_ids))
    return process_batch(state, list(delivery_ids))


def process_batch(state: WebhooksState, delivery_ids: Sequence[str]) -> dict[str, int]:
    """Claim ``delivery_ids`` and attempt each one concurrently; return counts by status (app context)."""
    return engine.run_to_completion(state, delivery_ids)


def send_now(state: WebhooksState, work: Work) -> Result:
    """Build, send and record one attempt of a claimed delivery on this thread (app context).

    A delivery that cannot be prepared, built or sent fails permanently, on record
    (:func:`engine.attempt_or_fail`).
    """
    return record(state, [engine.attempt_or_fail(state, work)])[0]


def process_delivery(delivery_id: str) -> Result | None:
    """Claim and attempt one delivery in the current app context, on this thread.

    Returns ``None`` when it was not claimable or ended without an attempt (cancelled).
    """
    state = get_state()
    todo = [w for w in prepare(state, [delivery_id]) if not w.skip]
    return send_now(state, todo[0]) if todo else None
