"""What happens after one attempt: the single, pure retry decision.

| answer                                   | decision                                         |
|------------------------------------------|--------------------------------------------------|
| 2xx                                      | succeeded                                        |
| 5xx, timeout, connection error, 408      | retry after the next backoff delay               |
| 429, and 503 with ``Retry-After``        | deferred: next attempt after ``Retry-After``     |
|                                          | (seconds or HTTP date, capped by                 |
|                                          | ``MAX_RETRY_AFTER``; a 429 without a usable one: |
|                                          | 1, 2, 4 ... 60 s), not counted as a retry; failed|
|                                          | once the waits would pass ``MAX_RATE_LIMIT_WAIT``|
| 1xx, 3xx (never followed), other 4xx,    | failed at once                                   |
| anything else, an address refused by the |                                                  |
| SSRF guard, a request that cannot be     |                                                  |
| built                                    |                                                  |
| a retryable answer after the last retry  | failed ("gave up after N attempts")              |

408 Request Timeout is retried: the endpoint says *it* timed out waiting for our
request (RFC 9110 §15.5.9: the client may repeat it), which is the same situation as
our own timeout, and the contract retries timeouts.

A rate-limit answer (429, or a 503 that carries ``Retry-After``: receiver_kit answers so for an
event still being handled) says "later", not "broken": the delivery is *deferred* to when
the endpoint said, without using up one of the retries the contract gives to failures
(a burst to a chat platform must not lose notifications). Each deferral is an attempt on
record (outcome ``deferred``); their waits add up, and once the next one would take the
total past ``MAX_RATE_LIMIT_WAIT`` the delivery fails with that reason.

No I/O here: the caller passes the status, the error kind and the ``Retry-After``
header, and gets a :class:`Decision` back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

# Outcomes.
SUCCEEDED = "succeeded"
RETRY = "retry"
DEFERRED = "deferred"  #: rate limited: another attempt later, not counted as a retry
FAILED = "failed"
#: Every outcome an attempt is recorded with (the ``outcome`` of the API's attempt object).
OUTCOMES = (SUCCEEDED, RETRY, DEFERRED, FAILED)

# Error kinds of an attempt that got no HTTP answer.
TIMEOUT = "timeout"  #: connect or read timed out: retried
CONNECTION = "connection"  #: refused, reset, DNS failure, TLS failure: retried
PERMANENT = "permanent"  #: blocked address, invalid request: never retried
ERROR_KINDS = (TIMEOUT, CONNECTION, PERMANENT)

#: Statuses outside 5xx that are retried with the backoff.
RETRYABLE_STATUSES = frozenset({408})
RATE_LIMITED = 429
#: Statuses whose ``Retry-After`` sets the next attempt's delay (RFC 9110 §10.2.3).
RETRY_AFTER_STATUSES = frozenset({RATE_LIMITED, 503})
#: Longest wait after a 429 without a usable ``Retry-After`` (1, 2, 4 ... seconds before).
MAX_RATE_LIMIT_BACKOFF = 60.0


@dataclass(frozen=True)
class Decision:
    """The outcome of an attempt: ``succeeded``, ``retry`` or ``deferred`` (another attempt after
    ``delay`` seconds) or ``failed``."""

    outcome: str
    delay: float | None = None
    reason: str = ""

    @property
    def retry(self) -> bool:
        """True when another attempt is due after :attr:`delay` seconds (a retry or a deferral)."""
        return self.outcome in (RETRY, DEFERRED)

    @property
    def deferred(self) -> bool:
        """True for a rate-limit deferral (not counted as a retry)."""
        return self.outcome == DEFERRED


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait per a ``Retry-After`` header: delta-seconds or an HTTP date.

    Returns ``None`` when the header is missing or unreadable; a date in the past is 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    seconds = (when - now).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def decide(
    *,
    attempt: int,
    delays: Sequence[float],
    status_code: int | None = None,
    error: str | None = None,
    retry_after: str | None = None,
    max_retry_after: float = 3600,
    now: datetime | None = None,
    deferrals: int = 0,
    deferred_seconds: float = 0.0,
    max_rate_limit_wait: float = 3600,
) -> Decision:
    """Decide what follows attempt number ``attempt`` (1 = the first attempt).

    Pass ``status_code`` when an HTTP answer arrived, else ``error`` (one of
    :data:`ERROR_KINDS`). ``delays[i]`` is the wait before retry ``i + 1``, so at most
    ``len(delays)`` retries follow the first attempt. ``attempt`` counts the attempts that
    were not deferrals; ``deferrals`` and ``deferred_seconds`` are the delivery's
    rate-limit deferrals so far and their waits in all.
    """
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    if status_code is None and error not in ERROR_KINDS:
        raise ValueError(f"pass a status_code or an error kind in {ERROR_KINDS}, got {error!r}")

    if status_code is not None:
        if 200 <= status_code < 300:
            return Decision(SUCCEEDED, reason=f"HTTP {status_code}")
        if 300 <= status_code < 400:
            return Decision(FAILED, reason=f"HTTP {status_code}: redirects are not followed")
        if status_code in RETRY_AFTER_STATUSES:
            deferral = _defer(
                status_code,
                retry_after,
                now=now,
                deferrals=deferrals,
                deferred_seconds=deferred_seconds,
                max_retry_after=max_retry_after,
                max_rate_limit_wait=max_rate_limit_wait,
            )
            if deferral is not None:
                return deferral
        retryable = 500 <= status_code < 600 or status_code in RETRYABLE_STATUSES
        if not retryable:
            return Decision(FAILED, reason=f"HTTP {status_code} is not retried")
        what = f"HTTP {status_code}"
    else:
        if error == PERMANENT:
            return Decision(FAILED, reason="the request could not be sent and is not retried")
        what = "timeout" if error == TIMEOUT else "connection error"

    if attempt > len(delays):
        return Decision(FAILED, reason=f"{what}; gave up after {attempt} attempts")

    delay = float(delays[attempt - 1])
    return Decision(RETRY, delay, f"{what}; retry {attempt} of {len(delays)}")


def _defer(
    status_code: int,
    retry_after: str | None,
    *,
    now: datetime | None,
    deferrals: int,
    deferred_seconds: float,
    max_retry_after: float,
    max_rate_limit_wait: float,
) -> Decision | None:
    """The deferral a rate-limit answer asks for, the failure once the waits would pass
    ``max_rate_limit_wait``, or ``None`` (a 503 without a usable ``Retry-After`` is a 5xx)."""
    waited = parse_retry_after(retry_after, now=now)
    if waited is None:
        if status_code != RATE_LIMITED:
            return None
        delay = min(2.0 ** min(max(deferrals, 0), 16), MAX_RATE_LIMIT_BACKOFF)
        why = "no usable Retry-After"
    else:
        delay = min(waited, float(max_retry_after))
        why = f"Retry-After {(retry_after or '').strip()[:64]}"
    total = max(deferred_seconds, 0.0) + delay
    if total > max_rate_limit_wait:
        return Decision(
            FAILED,
            reason=(
                f"HTTP {status_code}: rate limited; {deferrals} deferral(s) waited {deferred_seconds:g} s "
                f"and the endpoint asks for {delay:g} s more, past MAX_RATE_LIMIT_WAIT ({max_rate_limit_wait:g} s)"
            ),
        )
    return Decision(
        DEFERRED, delay, f"HTTP {status_code}; deferred {delay:g} s ({why}); deferral {deferrals + 1}, not a retry"
    )
