"""What operators see of each recorded attempt: the metrics and one structured log line.

:func:`recorded` runs on the recorder's thread after a group's commit (never on a sending
thread), for the attempts that group wrote.

The log line (logger ``flask_trakkr_webhooks.attempts``, level INFO; WARNING when the
delivery failed for good) carries the delivery, event and webhook ids, the provider, the
attempt number, the result class, the status code, the outcome and the latency; as
``key=value`` text or, with ``TRAKKR_WEBHOOKS_LOG_FORMAT = "json"``, as one JSON object.
It never carries the URL (a Slack or Discord URL is a credential), headers, bodies or error
messages (a library's message may quote the URL): only the error's type.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from . import metrics, retry
from .attempt import Outcome
from .state import WebhooksState

#: The per-attempt logger.
attempt_log = logging.getLogger("flask_trakkr_webhooks.attempts")

#: ``deliveries_total`` outcome of a decision that ends the delivery.
_ENDED = {retry.SUCCEEDED: "succeeded", retry.FAILED: "failed"}


def aware(value: datetime) -> datetime:
    """``value`` with its zone (SQLite hands timestamps back without it; they are stored in UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def fields(outcome: Outcome, result: str) -> dict[str, Any]:
    """The per-attempt log record's fields (no URL, header, body or error message: see the module)."""
    work, answer = outcome.work, outcome.answer
    return {
        "event": "webhook_attempt",
        "delivery_id": work.delivery_id,
        "event_id": work.event_id,
        "webhook_id": work.webhook_id,
        "event_type": work.event_type,
        "provider": work.provider,
        "attempt": work.attempt,
        "result": result,
        "status_code": answer.status_code,
        "outcome": outcome.decision.outcome,
        "latency_ms": outcome.duration_ms,
        "error_type": answer.error_type,
    }


def format_line(record: Mapping[str, Any], style: str) -> str:
    """One log line: ``json`` (an object) or ``text`` (``key=value`` pairs, None left out)."""
    if style == "json":
        return json.dumps(record, separators=(",", ":"), default=str)
    return " ".join(f"{key}={value}" for key, value in record.items() if value is not None and key != "event")


def recorded(state: WebhooksState, outcomes: Sequence[Outcome], here: Mapping[str, bool]) -> None:
    """Count and log the attempts of ``outcomes`` this transaction recorded (``here``: delivery
    id -> whether its update matched, :func:`record._recorded_here`)."""
    count = state.settings.metrics
    logs = attempt_log.isEnabledFor(logging.WARNING)
    if not (count or logs):
        return
    style = state.settings.log_format
    for outcome in outcomes:
        work = outcome.work
        if not here.get(work.delivery_id):
            continue
        answer, decision = outcome.answer, outcome.decision
        result = metrics.result_class(answer.status_code, answer.error)
        if count:
            metrics.attempted(work.provider, result, outcome.duration_ms / 1000.0)
            ended = _ENDED.get(decision.outcome)
            if ended is not None and not work.is_test:
                metrics.finished(work.event_type, work.provider, ended)
                if ended == "succeeded" and work.emitted_at is not None:
                    metrics.lag((outcome.finished - aware(work.emitted_at)).total_seconds())
        level = logging.WARNING if decision.outcome == retry.FAILED else logging.INFO
        if logs and attempt_log.isEnabledFor(level):
            attempt_log.log(level, "%s", format_line(fields(outcome, result), style))
