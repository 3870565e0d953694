"""Each endpoint's send budget, shared by every worker process and machine (Redis).

:func:`acquire` takes one send slot of an endpoint atomically (a Lua script: a sliding log of
send times per endpoint, checked against every window of its rate limit, on Redis's clock so
machines with different clocks agree) or says how long until one is free, without taking
anything. :func:`hold` blocks an endpoint for a while: after a ``429`` or ``503`` with
``Retry-After``, or when its ``X-RateLimit-Remaining`` reached 0, every worker then waits.

Redis unreachable: the budget is not enforced (:func:`acquire` grants) and a warning is
logged once a minute; the deliveries themselves are never held up by the limiter, and a
platform that answers ``429`` meanwhile still only defers them (:mod:`.retry`).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import redis

from . import pacing
from .state import WebhooksState

log = logging.getLogger("flask_trakkr_webhooks")

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local hold = tonumber(redis.call('GET', KEYS[2]) or '0')
if hold > now then return tostring(hold - now) end
local longest = 0
for i = 2, #ARGV, 2 do
  local p = tonumber(ARGV[i + 1])
  if p > longest then longest = p end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - longest)
local n = redis.call('ZCARD', KEYS[1])
local wait = 0
for i = 2, #ARGV, 2 do
  local limit = tonumber(ARGV[i])
  if n >= limit then
    local e = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
    local w = tonumber(e[2]) + tonumber(ARGV[i + 1]) - now
    if w > wait then wait = w end
  end
end
if wait > 0 then return tostring(wait) end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(longest * 1000) + 1000)
return '0'
"""

_HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_at = now + tonumber(ARGV[1])
local hold = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_at > hold then
  redis.call('SET', KEYS[1], tostring(until_at), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return tostring(math.max(until_at, hold) - now)
"""

#: Seconds between two "Redis unreachable" warnings.
_WARN_EVERY = 60.0
_last_warning = 0.0


def _keys(state: WebhooksState, endpoint_key: str) -> list[str]:
    base = f"trakkr_webhooks:{state.settings.queue}:pace:{endpoint_key}"
    return [base, base + ":hold"]


def _warn(exc: Exception) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= _WARN_EVERY:
        _last_warning = now
        log.warning("trakkr_webhooks: rate limits not enforced while Redis is unreachable (%r)", exc)


def acquire(state: WebhooksState, endpoint_key: str, limit: pacing.RateLimit) -> float:
    """Take a send slot of the endpoint now (returns 0.0), or return the seconds until one may
    be free (nothing taken: ask again then). Grants when Redis cannot be reached."""
    if not limit:
        return 0.0
    args: list[Any] = [uuid.uuid4().hex]
    for w in limit:
        args += [w.requests, repr(w.per_seconds * (1 + pacing.MARGIN))]
    try:
        answer = state.redis().eval(_ACQUIRE, 2, *_keys(state, endpoint_key), *args)
    except redis.RedisError as exc:
        _warn(exc)
        return 0.0
    return max(0.0, float(answer))


def hold(state: WebhooksState, endpoint_key: str, seconds: float) -> float:
    """Send nothing more to the endpoint for ``seconds`` (from any worker); returns the seconds the
    endpoint is now held for (a longer hold already in place is kept)."""
    seconds = min(max(float(seconds), 0.0), pacing.MAX_WINDOW_SECONDS)
    if seconds <= 0:
        return 0.0
    try:
        answer = state.redis().eval(_HOLD, 1, _keys(state, endpoint_key)[1], repr(seconds))
    except redis.RedisError as exc:
        _warn(exc)
        return seconds
    return float(answer)
