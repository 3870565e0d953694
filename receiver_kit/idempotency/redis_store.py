"""Idempotency keys in Redis (or Valkey): shared by every process and host that uses the same server.

Each key is one string, ``processing:<token>`` or ``completed:<token>``, with a
Redis TTL (``PX``), so expiry is the server's job: a crashed handler's claim
simply disappears after ``processing_ttl`` and the next delivery's ``SET NX``
wins it. Every operation is one Lua script, so check-and-set is atomic and a
``complete``/``release`` only touches the caller's own claim. The ``redis``
package is imported only when a URL is given instead of a client.
"""

from __future__ import annotations

from typing import Any

from .base import ACQUIRED, COMPLETED, DEFAULT_COMPLETED_TTL, DEFAULT_PROCESSING_TTL, PROCESSING, Claim, TTLs, new_token

DEFAULT_PREFIX = "receiver_kit:idempotency:"

# KEYS[1] key; ARGV[1] token, ARGV[2] ttl ms. Returns "acquired" or the current value.
CLAIM_SCRIPT = """
if redis.call('SET', KEYS[1], 'processing:' .. ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 'acquired'
end
return redis.call('GET', KEYS[1])
"""

# Completed if the claim is ours, or if it expired and nobody took it over (the work is done).
COMPLETE_SCRIPT = """
local v = redis.call('GET', KEYS[1])
if v == false or v == 'processing:' .. ARGV[1] or v == 'completed:' .. ARGV[1] then
  redis.call('SET', KEYS[1], 'completed:' .. ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == 'processing:' .. ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def text(value: Any) -> str | None:
    """A Redis reply as ``str`` (``bytes`` decoded), ``None`` kept."""
    if value is None:
        return None
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def milliseconds(seconds: float) -> int:
    """``seconds`` as a positive whole number of milliseconds (Redis ``PX``)."""
    return max(1, int(round(seconds * 1000)))


class RedisStore(TTLs):
    """Idempotency store on a ``redis.Redis`` client (``decode_responses`` either way) or a URL.

    ``prefix`` namespaces the keys (give each app its own); TTLs are in seconds.
    """

    def __init__(
        self,
        client: Any,
        prefix: str = DEFAULT_PREFIX,
        processing_ttl: float = DEFAULT_PROCESSING_TTL,
        completed_ttl: float = DEFAULT_COMPLETED_TTL,
    ) -> None:
        if isinstance(client, str):
            import redis  # lazy: only this store needs the package

            client = redis.Redis.from_url(client)
        self.client = client
        self.prefix = prefix
        super().__init__(processing_ttl, completed_ttl)
        self._claim = client.register_script(CLAIM_SCRIPT)
        self._complete = client.register_script(COMPLETE_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)

    def key(self, key: str) -> str:
        """The Redis key that holds ``key``."""
        return self.prefix + key

    def claim(self, key: str, *, processing_ttl: float | None = None) -> Claim:
        """``SET NX PX`` a fresh processing claim, or report what holds the key."""
        ttl = self.processing_ttl_for(processing_ttl)
        token = new_token()
        answer = text(self._claim(keys=[self.key(key)], args=[token, milliseconds(ttl)]))
        if answer == ACQUIRED:
            return Claim(ACQUIRED, token)
        return Claim(COMPLETED if (answer or "").startswith(COMPLETED + ":") else PROCESSING)

    def complete(self, key: str, token: str, *, completed_ttl: float | None = None) -> bool:
        """Mark ``key`` completed unless another claim owns it now."""
        ttl = self.completed_ttl_for(completed_ttl)
        return bool(self._complete(keys=[self.key(key)], args=[token, milliseconds(ttl)]))

    def release(self, key: str, token: str) -> bool:
        """Delete ``key`` if our claim still holds it in ``processing``."""
        return bool(self._release(keys=[self.key(key)], args=[token]))

    def state(self, key: str) -> str | None:
        """``"processing"``, ``"completed"`` or ``None``: for tests and debugging."""
        value = text(self.client.get(self.key(key)))
        if value is None:
            return None
        return COMPLETED if value.startswith(COMPLETED + ":") else PROCESSING
