"""``RedisStore`` for ``async`` handlers: the same keys and Lua scripts on a ``redis.asyncio`` client.

Every method is a coroutine, so a FastAPI or Starlette handler waits on Redis
without blocking its event loop. Keys written by ``RedisStore`` and by this store
are interchangeable (a sync and an async app may share one prefix). The
``redis`` package is imported only when a URL is given instead of a client.
"""

from __future__ import annotations

from typing import Any

from .base import ACQUIRED, COMPLETED, DEFAULT_COMPLETED_TTL, DEFAULT_PROCESSING_TTL, PROCESSING, Claim, TTLs, new_token
from .redis_store import CLAIM_SCRIPT, COMPLETE_SCRIPT, DEFAULT_PREFIX, RELEASE_SCRIPT, milliseconds, text


class AsyncRedisStore(TTLs):
    """Idempotency store on a ``redis.asyncio.Redis`` client (``decode_responses`` either way) or a URL.

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
            import redis.asyncio  # lazy: only this store needs the package

            client = redis.asyncio.Redis.from_url(client)
        self.client = client
        self.prefix = prefix
        super().__init__(processing_ttl, completed_ttl)
        self._claim = client.register_script(CLAIM_SCRIPT)
        self._complete = client.register_script(COMPLETE_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)

    def key(self, key: str) -> str:
        """The Redis key that holds ``key``."""
        return self.prefix + key

    async def claim(self, key: str, *, processing_ttl: float | None = None) -> Claim:
        """``SET NX PX`` a fresh processing claim, or report what holds the key."""
        ttl = self.processing_ttl_for(processing_ttl)
        token = new_token()
        answer = text(await self._claim(keys=[self.key(key)], args=[token, milliseconds(ttl)]))
        if answer == ACQUIRED:
            return Claim(ACQUIRED, token)
        return Claim(COMPLETED if (answer or "").startswith(COMPLETED + ":") else PROCESSING)

    async def complete(self, key: str, token: str, *, completed_ttl: float | None = None) -> bool:
        """Mark ``key`` completed unless another claim owns it now."""
        ttl = self.completed_ttl_for(completed_ttl)
        return bool(await self._complete(keys=[self.key(key)], args=[token, milliseconds(ttl)]))

    async def release(self, key: str, token: str) -> bool:
        """Delete ``key`` if our claim still holds it in ``processing``."""
        return bool(await self._release(keys=[self.key(key)], args=[token]))

    async def state(self, key: str) -> str | None:
        """``"processing"``, ``"completed"`` or ``None``: for tests and debugging."""
        value = text(await self.client.get(self.key(key)))
        if value is None:
            return None
        return COMPLETED if value.startswith(COMPLETED + ":") else PROCESSING
