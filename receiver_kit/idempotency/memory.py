"""An in-process idempotency store: for tests and single-process apps.

Thread-safe (one lock). Not shared between processes, and forgotten on restart:
with several workers (gunicorn ``-w 4``) or across deploys use ``RedisStore`` or
``SQLStore``.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from .base import ACQUIRED, COMPLETED, DEFAULT_COMPLETED_TTL, DEFAULT_PROCESSING_TTL, PROCESSING, Claim, TTLs, new_token


class _Entry(NamedTuple):
    state: str
    token: str
    expires_at: float


class MemoryStore(TTLs):
    """Idempotency keys in a dict guarded by a lock; expired entries leave in expiry order.

    Every write also goes on a heap of ``(expires_at, key)``, so each claim drops
    exactly the entries that have expired, oldest first: the cost per request does
    not grow with the number of keys kept (a full scan every N claims did, at a week's
    ``completed_ttl`` that is every key the receiver ever saw).
    """

    def __init__(
        self,
        processing_ttl: float = DEFAULT_PROCESSING_TTL,
        completed_ttl: float = DEFAULT_COMPLETED_TTL,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(processing_ttl, completed_ttl)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        # (expires_at, key) of every write; a pair whose key was rewritten or released
        # since is skipped when it comes up.
        self._expiry: list[tuple[float, str]] = []

    def claim(self, key: str, *, processing_ttl: float | None = None) -> Claim:
        """Claim ``key`` unless a live entry holds it (an expired ``processing`` one is taken over)."""
        ttl = self.processing_ttl_for(processing_ttl)
        with self._lock:
            now = self._clock()
            self._sweep(now)
            entry = self._entries.get(key)
            if entry is not None and entry.expires_at > now:
                return Claim(entry.state)
            token = new_token()
            self._put(key, _Entry(PROCESSING, token, now + ttl))
            return Claim(ACQUIRED, token)

    def complete(self, key: str, token: str, *, completed_ttl: float | None = None) -> bool:
        """Mark ``key`` completed unless another claim owns it now."""
        ttl = self.completed_ttl_for(completed_ttl)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.token != token:
                return False
            self._put(key, _Entry(COMPLETED, token, self._clock() + ttl))
            return True

    def release(self, key: str, token: str) -> bool:
        """Forget ``key`` if our claim still holds it in ``processing``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.token != token or entry.state != PROCESSING:
                return False
            del self._entries[key]
            return True

    def state(self, key: str) -> str | None:
        """``"processing"``, ``"completed"`` or ``None`` (unknown or expired): for tests and debugging."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.expires_at <= self._clock():
                return None
            return entry.state

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _put(self, key: str, entry: _Entry) -> None:
        self._entries[key] = entry
        heapq.heappush(self._expiry, (entry.expires_at, key))

    def _sweep(self, now: float) -> None:
        heap = self._expiry
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            entry = self._entries.get(key)
            if entry is not None and entry.expires_at <= now:
                del self._entries[key]
