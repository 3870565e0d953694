"""Each endpoint's send budget, shared by every worker process and machine (Redis).

:func:`acquire` takes one send slot of an endpoint atomically (a Lua script, on Redis's clock so
machines with different clocks agree) or says how long until one is free, without taking
anything. :func:`sent` gives the slot back once its request is answered. :func:`hold` blocks an
endpoint for a while: after a ``429`` or ``503`` with ``Retry-After``, or when its
``X-RateLimit-Remaining`` reached 0, every worker then waits.

A platform counts a request when it *arrives*, and that is somewhere between the grant and the
answer: a granted delivery may wait for a sending thread, and a loaded machine may take a
while to put it on the wire. So a slot counts as "arriving now" for every window while its
request is in flight, and from its answer on it counts at the answer's time, which is never
earlier than the arrival. Whatever the delays between grant and send, the endpoint then never
sees more than its limit in any window. A slot whose answer never comes (its worker killed)
counts as answered at its deadline, ``sending_for`` seconds after the grant.

Redis unreachable: the budget is not enforced (:func:`acquire` grants) and a warning is
logged once a minute; the deliveries themselves are never held up by the limiter, and a
platform that answers ``429`` meanwhile still only defers them (:mod:`.retry`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis

from . import pacing
from .state import WebhooksState

log = logging.getLogger("flask_trakkr_webhooks")

# KEYS: the log of answered slots (zset: token -> answer time), the hold, the slots in flight
# (hash: token -> deadline). ARGV: the token, its deadline (seconds from now), then
# (requests, seconds) per window. Returns '0' (granted) or the seconds to wait.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local hold = tonumber(redis.call('GET', KEYS[2]) or '0')
if hold > now then return tostring(hold - now) end
local longest = 0
for i = 3, #ARGV, 2 do
  local p = tonumber(ARGV[i + 1])
  if p > longest then longest = p end
end
local flying = redis.call('HGETALL', KEYS[3])
local k = 0
for i = 1, #flying, 2 do
  local deadline = tonumber(flying[i + 1])
  if deadline <= now then
    redis.call('HDEL', KEYS[3], flying[i])
    redis.call('ZADD', KEYS[1], deadline, flying[i])
  else
    k = k + 1
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - longest)
local n = redis.call('ZCARD', KEYS[1])
local wait = 0
for i = 3, #ARGV, 2 do
  local limit = tonumber(ARGV[i])
  local p = tonumber(ARGV[i + 1])
  if k >= limit then
    if p > wait then wait = p end
  elseif n + k >= limit then
    local e = redis.call('ZRANGE', KEYS[1], n + k - limit, n + k - limit, 'WITHSCORES')
    local w = tonumber(e[2]) + p - now
    if w > wait then wait = w end
  end
end
if wait > 0 then return tostring(wait) end
local ttl = math.ceil((longest + tonumber(ARGV[2])) * 1000) + 1000
redis.call('HSET', KEYS[3], ARGV[1], tostring(now + tonumber(ARGV[2])))
redis.call('PEXPIRE', KEYS[3], ttl)
if n > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return '0'
"""

# KEYS: the log, the slots in flight. ARGV: the token, the log's lifetime (ms).
_SENT = """
if redis.call('HDEL', KEYS[2], ARGV[1]) == 1 then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[1], tonumber(t[1]) + tonumber(t[2]) / 1000000, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
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
    return [base, base + ":hold", base + ":flying"]


def _warn(exc: Exception) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= _WARN_EVERY:
        _last_warning = now
        log.warning("trakkr_webhooks: rate limits not enforced while Redis is unreachable (%r)", exc)


def _windows(limit: pacing.RateLimit) -> list[Any]:
    args: list[Any] = []
    for w in limit:
        args += [w.requests, repr(w.per_seconds * (1 + pacing.MARGIN))]
    return args


def acquire(state: WebhooksState, endpoint_key: str, limit: pacing.RateLimit, token: str, sending_for: float) -> float:
    """Take a send slot of the endpoint now (returns 0.0), or return the seconds until one may
    be free (nothing taken: ask again then). Grants when Redis cannot be reached.

    ``token`` names the slot for :func:`sent` (unique per attempt); ``sending_for`` is the most
    seconds its request can take from now to its answer: past that, a slot never given back
    counts as answered.
    """
    if not limit:
        return 0.0
    args = [token, repr(max(float(sending_for), 0.0)), *_windows(limit)]
    try:
        answer = state.redis().eval(_ACQUIRE, 3, *_keys(state, endpoint_key), *args)
    except redis.RedisError as exc:
        _warn(exc)
        return 0.0
    return max(0.0, float(answer))


def sent(state: WebhooksState, endpoint_key: str, limit: pacing.RateLimit, token: str) -> None:
    """The request of slot ``token`` was answered (or will not be sent): from now on it counts at
    this moment, which is no earlier than when it reached the endpoint."""
    if not limit:
        return
    log_key, _, flying = _keys(state, endpoint_key)
    lifetime = int(max(w.per_seconds for w in limit) * (1 + pacing.MARGIN) * 1000) + 1000
    try:
        state.redis().eval(_SENT, 2, log_key, flying, token, lifetime)
    except redis.RedisError as exc:
        _warn(exc)


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
