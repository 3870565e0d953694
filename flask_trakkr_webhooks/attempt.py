"""One attempt: build the exact request, send it through the SSRF guard, decide what follows.

No database here: :func:`perform` runs on the engine's sending threads. It builds the
request with :func:`message.build` (pure), sends it with :func:`send` (the pinned session:
vetted addresses only, no redirects, the configured timeout) and applies
:func:`retry.decide` (pure). :mod:`.record` writes the :class:`Outcome`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import requests

from . import ids, message, retry, ssrf
from .claim import Work
from .state import WebhooksState

#: Longest error message kept on an attempt.
MAX_ERROR_CHARS = 1000


def http_session(state: WebhooksState) -> requests.Session:
    """This process's delivery session: pinned to vetted addresses, no cookies, no redirects, keep-alive."""
    local = state.local
    if local.http is None:
        settings = state.settings
        local.http = ssrf.pinned_session(
            pool_connections=max(64, settings.concurrency), pool_maxsize=max(settings.per_host_concurrency, 1)
        )
    return local.http


@dataclass
class Answer:
    """What the endpoint answered to one request (or why there was no answer)."""

    status_code: int | None = None
    headers: dict[str, str] | None = None
    body: str | None = None
    error: str | None = None  # a retry.ERROR_KINDS value
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


def send(state: WebhooksState, msg: message.Message) -> Answer:
    """POST ``msg`` once, through the SSRF guard, with the configured timeout; never raises."""
    settings = state.settings
    answer = Answer()
    try:
        prepared = requests.Request("POST", msg.url, data=msg.body, headers=msg.headers).prepare()
        response = ssrf.safe_send(
            http_session(state), prepared, timeout=settings.timeout, stream=True, **ssrf.settings_kwargs(settings)
        )
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


def _error(answer: Answer, exc: BaseException) -> None:
    answer.error_type = type(exc).__name__
    answer.error_message = str(exc)[:MAX_ERROR_CHARS] or type(exc).__name__


@dataclass(frozen=True)
class Outcome:
    """One attempt as it happened, not yet recorded."""

    work: Work
    answer: Answer
    decision: retry.Decision
    started: datetime
    finished: datetime
    duration_ms: float


def perform(state: WebhooksState, work: Work) -> Outcome:
    """Build and send one attempt of a claimed delivery and decide what follows (no database).

    Safe to run on any thread. Test deliveries are never retried.
    """
    settings = state.settings
    started = ids.utcnow()
    clock = time.perf_counter()
    assert work.endpoint is not None
    try:
        msg = message.build(
            work.endpoint,
            work.payload,
            delivery_id=work.delivery_id,
            timestamp=int(started.timestamp()),
            event_type=state.event_types.spec(work.event_type),
        )
    except ValueError as exc:  # MessageError, TemplateError: the webhook cannot be sent as configured
        answer = Answer(error=retry.PERMANENT)
        _error(answer, exc)
    else:
        answer = send(state, msg)
    duration_ms = round((time.perf_counter() - clock) * 1000.0, 3)
    finished = ids.utcnow()
    decision = retry.decide(
        attempt=work.attempt,
        delays=settings.retry_delays,
        status_code=answer.status_code,
        error=answer.error,
        retry_after=(answer.headers or {}).get("Retry-After"),
        max_retry_after=settings.max_retry_after,
        now=finished,
    )
    if work.is_test and decision.retry:
        # Drop the "; retry 1 of 3" part: it would promise a retry that never comes.
        what = decision.reason.partition(";")[0]
        decision = retry.Decision(retry.FAILED, reason=f"{what} (test deliveries are not retried)")
    return Outcome(work, answer, decision, started, finished, duration_ms)
