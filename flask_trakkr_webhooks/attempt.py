"""One attempt: build the exact request, send it through the SSRF guard, decide what follows.

No database here: :func:`perform` runs on the engine's sending threads. It builds the
request with :func:`message.build` (pure), sends it with :func:`send` (the pinned session:
vetted addresses only, no redirects, the configured timeout) and applies
:func:`retry.decide` (pure). :mod:`.record` writes the :class:`Outcome`.

``TRAKKR_WEBHOOKS_TIMEOUT`` bounds the whole attempt, connect to the last byte read: it is
a deadline on the socket (:mod:`.ssrf`), not a per-read timeout, so a receiver trickling
its answer cannot hold a sending thread; past it the attempt is a timeout (retried).
What the receiver answers is stored with the webhook's own secrets (credentials, auth
header values, signing secrets) replaced by :data:`REDACTED` (:func:`redact`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from urllib3 import BaseHTTPResponse
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from . import auth, ids, message, metrics, retry, ssrf, tracing
from .claim import Work
from .errors import MessageError
from .state import WebhooksState

#: Longest error message kept on an attempt.
MAX_ERROR_CHARS = 1000
#: What a secret echoed by a receiver is stored as.
REDACTED = "[REDACTED]"
#: A failure this close to the attempt's deadline is the deadline's doing (socket timers round).
_DEADLINE_SLACK = 0.05


def http_client(state: WebhooksState) -> ssrf.PinnedClient:
    """This process's delivery client: pinned to vetted addresses, no cookies, no redirects, keep-alive."""
    local = state.local
    if local.http is None:
        settings = state.settings
        local.http = ssrf.PinnedClient(
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


def secrets_of(endpoint: message.Endpoint | None) -> tuple[str, ...]:
    """The webhook's own secrets, as a receiver might echo them back.

    Its secret credential columns (:func:`auth.secret_columns`), the values of the auth
    headers built from them (and the part after an ``Authorization`` scheme, e.g. the
    base64 of ``Basic``), its current and previous signing secrets (and the base64 key
    of a ``whsec_`` secret), each also as JSON would escape it. Longest first.
    """
    if endpoint is None:
        return ()
    credentials = endpoint.credentials
    return _secrets(
        endpoint.auth_type or "none",
        tuple(credentials.items()),
        endpoint.signing_secret,
        endpoint.previous_signing_secret,
        auth.names(),
    )


# Cached: a webhook's secrets are the same for every delivery to it (and this runs per attempt);
# the auth methods' names are in the key so that registering one is seen.
@lru_cache(maxsize=1024)
def _secrets(
    auth_type: str,
    credential_items: tuple[tuple[str, str | None], ...],
    signing_secret: str | None,
    previous_signing_secret: str | None,
    methods: tuple[str, ...],
) -> tuple[str, ...]:
    found: set[str] = set()
    credentials = dict(credential_items)
    for column in auth.secret_columns():
        value = credentials.get(column)
        if value:
            found.add(value)
    try:
        built = auth.headers_for(auth_type, credentials)
    except MessageError:  # nothing was sent with them, so nothing can be echoed
        built = {}
    for value in built.values():
        found.add(value)
        scheme, _, rest = value.partition(" ")
        if rest and scheme.isalpha():
            found.add(rest.strip())
    for secret in (signing_secret, previous_signing_secret):
        if secret:
            found.add(secret)
            if secret.startswith("whsec_") and len(secret) > len("whsec_"):
                found.add(secret[len("whsec_") :])
    return _with_escaped_forms(found)


def _with_escaped_forms(values: Iterable[str]) -> tuple[str, ...]:
    out: set[str] = set()
    for value in values:
        if not value:
            continue
        out.add(value)
        # How a receiver echoing JSON writes it: escaped, perhaps with "/" as "\/" (PHP).
        escaped = json.dumps(value)[1:-1]
        out.update((escaped, escaped.replace("/", "\\/"), json.dumps(value, ensure_ascii=False)[1:-1]))
    return tuple(sorted(out, key=lambda v: (-len(v), v)))


@lru_cache(maxsize=512)
def _pattern(secrets: tuple[str, ...]) -> re.Pattern[str]:
    # Longest first, so a secret containing another is replaced whole.
    return re.compile("|".join(re.escape(secret) for secret in secrets))


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every occurrence of each of ``secrets`` replaced by :data:`REDACTED`."""
    # Plain substring checks first: most answers hold no secret, and they are cheaper than the regex.
    if not secrets or not text or not any(secret in text for secret in secrets):
        return text
    return _pattern(tuple(secrets)).sub(REDACTED, text)


def _redact_headers(headers: Mapping[str, str], secrets: Sequence[str]) -> dict[str, str]:
    plain = dict(headers)
    if secrets:
        joined = "\n".join(f"{k}\n{v}" for k, v in plain.items())  # one look for the usual case: none there
        if any(secret in joined for secret in secrets):
            return {redact(k, secrets): redact(v, secrets) for k, v in plain.items()}
    return plain


def _read_limited(response: BaseHTTPResponse, limit: int, secrets: Sequence[str] = ()) -> str:
    chunks, size = [], 0
    if limit > 0:
        for chunk in response.stream(min(limit, 16384), decode_content=True):
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
    text = b"".join(chunks)[:limit].decode("utf-8", "replace")
    if not secrets:
        return text
    text = redact(text, secrets)
    if size >= limit:  # cut by the limit: the cut may have left the start of a secret
        text = _redact_cut_secret(text, secrets)
    return text


def _redact_cut_secret(text: str, secrets: Sequence[str]) -> str:
    # Reading on past the limit to see the whole secret would let a trickled body hold the
    # attempt; so a tail that starts any secret is redacted instead.
    longest = 0
    for secret in secrets:
        for size in range(min(len(secret) - 1, len(text)), longest, -1):
            if text.endswith(secret[:size]):
                longest = size
                break
    return text[:-longest] + REDACTED if longest else text


def _past(deadline: float) -> bool:
    return time.monotonic() >= deadline - _DEADLINE_SLACK


def send(state: WebhooksState, msg: message.Message, endpoint: message.Endpoint | None = None) -> Answer:
    """POST ``msg`` once, through the SSRF guard, within the configured timeout; never raises.

    ``TRAKKR_WEBHOOKS_TIMEOUT`` bounds the whole attempt (connect to the last byte read,
    the kept part of the body included): past it the answer is a :data:`retry.TIMEOUT`.
    ``endpoint``'s secrets (:func:`secrets_of`) are redacted from the stored headers and body.
    """
    settings = state.settings
    answer = Answer()
    secrets = secrets_of(endpoint)
    deadline = time.monotonic() + settings.timeout
    try:
        response = ssrf.safe_send(
            http_client(state),
            ssrf.Outgoing("POST", msg.url, msg.body, msg.headers),
            timeout=settings.timeout,
            deadline=deadline,
            **ssrf.settings_kwargs(settings),
        )
    except ssrf.UnresolvableHost as exc:  # DNS outages are transient
        answer.error = retry.CONNECTION
        _error(answer, exc)
    except (NewConnectionError, ProtocolError, SSLError, ClosedPoolError) as exc:
        # A send or TLS handshake cut off by the deadline surfaces as a connection error. A pool
        # closed under us (evicted by another host's) is one too: the next attempt gets a new one.
        answer.error = retry.TIMEOUT if _past(deadline) else retry.CONNECTION
        _error(answer, exc)
    except (ConnectTimeoutError, ReadTimeoutError) as exc:
        answer.error = retry.TIMEOUT
        _error(answer, exc)
    except (ssrf.SSRFError, HTTPError, ValueError) as exc:  # blocked, malformed: permanent
        answer.error = retry.PERMANENT
        _error(answer, exc)
    else:
        try:
            answer.status_code = response.status
            answer.headers = _redact_headers(response.headers, secrets)
            try:
                answer.body = _read_limited(response, settings.response_body_limit, secrets)
            except (HTTPError, OSError) as exc:
                answer.body = None
                if _past(deadline):  # a trickled body: the attempt timed out, whatever the status said
                    status, answer.status_code = answer.status_code, None
                    answer.error = retry.TIMEOUT
                    answer.error_type = "ReadTimeout"
                    answer.error_message = (
                        f"the HTTP {status} answer's body was not read within TRAKKR_WEBHOOKS_TIMEOUT "
                        f"({settings.timeout:g} s), which bounds the whole attempt"
                    )
                else:  # the status stands; note the body error
                    _error(answer, exc)
        finally:
            _finish(response)
    if answer.error_message and secrets:
        answer.error_message = redact(answer.error_message, secrets)
    return answer


def _header(headers: dict[str, str] | None, name: str) -> str | None:
    """A response header by name, in any letter case (the stored headers are a plain dict)."""
    if not headers:
        return None
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def _finish(response: BaseHTTPResponse) -> None:
    # A body read to its end has already given the connection back to its pool; one left
    # unread (past the kept limit, or cut off) is closed, never reused with bytes pending.
    if not response.closed:
        response.close()
    response.release_conn()


#: The names attempts have always stored for the client's errors (they were ``requests``' names).
_ERROR_NAMES: tuple[tuple[type[BaseException], str], ...] = (
    (NewConnectionError, "ConnectionError"),  # a subclass of ConnectTimeoutError: first
    (ConnectTimeoutError, "ConnectTimeout"),
    (ReadTimeoutError, "ReadTimeout"),
    (SSLError, "SSLError"),
    (ProtocolError, "ConnectionError"),
    (ClosedPoolError, "ConnectionError"),
)


def _error(answer: Answer, exc: BaseException) -> None:
    name = next((name for kind, name in _ERROR_NAMES if isinstance(exc, kind)), type(exc).__name__)
    # NewConnectionError's text starts with the connection object's repr; its own message is enough.
    text = getattr(exc, "_message", None) if isinstance(exc, NewConnectionError) else None
    answer.error_type = name
    answer.error_message = (text or str(exc))[:MAX_ERROR_CHARS] or name


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
    span = _start_span(work) if tracing.AVAILABLE else None
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
        if span is not None and settings.traceparent_header:
            parent = tracing.traceparent(span)
            if parent:
                msg.headers[tracing.TRACEPARENT] = parent
        answer = send(state, msg, work.endpoint)
    duration_ms = round((time.perf_counter() - clock) * 1000.0, 3)
    finished = ids.utcnow()
    decision = retry.decide(
        attempt=work.retries_used,
        delays=settings.retry_delays,
        status_code=answer.status_code,
        error=answer.error,
        retry_after=_header(answer.headers, "Retry-After"),
        max_retry_after=settings.max_retry_after,
        now=finished,
        deferrals=work.deferrals,
        deferred_seconds=work.deferred_seconds,
        max_rate_limit_wait=settings.max_rate_limit_wait,
    )
    if work.is_test and decision.retry:
        # Drop the "; retry 1 of 3" part: it would promise a retry that never comes.
        what = decision.reason.partition(";")[0]
        decision = retry.Decision(retry.FAILED, reason=f"{what} (test deliveries are not retried)")
    if span is not None:
        tracing.finish(
            span,
            {
                "http.response.status_code": answer.status_code,
                "trakkr_webhooks.result": metrics.result_class(answer.status_code, answer.error),
                "trakkr_webhooks.outcome": decision.outcome,
                "error.type": answer.error_type,
            },
            error=decision.reason if decision.outcome != retry.SUCCEEDED else None,
        )
    return Outcome(work, answer, decision, started, finished, duration_ms)


def _start_span(work: Work) -> Any:
    """The attempt's span, a child of the emit's (its stored trace context); no URL (it may be a secret)."""
    return tracing.start(
        tracing.ATTEMPT_SPAN,
        {
            "trakkr_webhooks.delivery_id": work.delivery_id,
            "trakkr_webhooks.event_id": work.event_id,
            "trakkr_webhooks.event_type": work.event_type,
            "trakkr_webhooks.webhook_id": work.webhook_id or "",
            "trakkr_webhooks.provider": work.provider,
            "trakkr_webhooks.attempt": work.attempt,
        },
        parent=work.trace_context,
    )
