"""An in-process idempotency store: for tests and single-process apps.

Thread-safe (one lock). Not shared between processes, and forgotten on restart:
with several workers (gunicorn ``-w 4``) or across deploys use ``RedisStore`` or
``SQLStore``.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable

from .base import ACQUIRED, COMPLETED, DEFAULT_COMPLETED_TTL, DEFAULT_PROCESSING_TTL, PROCESSING, Claim, TTLs, new_token

#: An entry: ``(state, token, expires_at)`` (indices 0, 1, 2). A plain tuple: this store is on every request's
#: path, and building a named tuple costs as much as the dict lookup it guards.
_Entry = tuple[str, str, float]

#: The answers that carry no token are the same every time: built once.
_ANSWERS = {PROCESSING: Claim(PROCESSING), COMPLETED: Claim(COMPLETED)}

#: Distinct TTLs that get a FIFO queue of their own (the two defaults, and a few per-call ones).
MAX_TTL_QUEUES = 8


class MemoryStore(TTLs):
    """Idempotency keys in a dict guarded by a lock; expired entries leave in expiry order.

    Every write also goes on an expiry queue of ``(expires_at, key)``, so each claim drops
    exactly the entries that have expired, oldest first: the cost per request does
    not grow with the number of keys kept (a full scan every N claims did, at a week's
    ``completed_ttl`` that is every key the receiver ever saw). Writes with the same TTL
    expire in the order they were made, so each TTL has a FIFO queue (an append, where a
    heap of every key paid ~17 comparisons a write at 100,000 keys); past
    :data:`MAX_TTL_QUEUES` distinct per-call TTLs, writes go on one heap.
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
        self._queues: dict[float, deque[tuple[float, str]]] = {}
        # Claim tokens only have to differ from claim to claim: nothing outside this process
        # sees them, so a counter behind a random prefix does what os.urandom per claim did.
        self._token_prefix = new_token()[:16] + "-"
        self._token_numbers = itertools.count(1)

    def claim(self, key: str, *, processing_ttl: float | None = None) -> Claim:
        """Claim ``key`` unless a live entry holds it (an expired ``processing`` one is taken over)."""
        ttl = self.processing_ttl_for(processing_ttl)
        with self._lock:
            now = self._clock()
            self._sweep(now)
            entry = self._entries.get(key)
            if entry is not None and entry[2] > now:
                return _ANSWERS[entry[0]]
            token = f"{self._token_prefix}{next(self._token_numbers)}"
            self._put(key, (PROCESSING, token, now + ttl), ttl)
            return Claim(ACQUIRED, token)

    def complete(self, key: str, token: str, *, completed_ttl: float | None = None) -> bool:
        """Mark ``key`` completed unless another claim owns it now."""
        ttl = self.completed_ttl_for(completed_ttl)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[1] != token:
                return False
            self._put(key, (COMPLETED, token, self._clock() + ttl), ttl)
            return True

    def release(self, key: str, token: str) -> bool:
        """Forget ``key`` if our claim still holds it in ``processing``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[1] != token or entry[0] != PROCESSING:
                return False
            del self._entries[key]
            return True

    def state(self, key: str) -> str | None:
        """``"processing"``, ``"completed"`` or ``None`` (unknown or expired): for tests and debugging."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[2] <= self._clock():
                return None
            return entry[0]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _put(self, key: str, entry: _Entry, ttl: float) -> None:
        self._entries[key] = entry
        queue = self._queues.get(ttl)
        if queue is None and len(self._queues) < MAX_TTL_QUEUES:
            queue = self._queues[ttl] = deque()
        if queue is not None:
            queue.append((entry[2], key))
        else:
            heapq.heappush(self._expiry, (entry[2], key))

    def _sweep(self, now: float) -> None:
        entries = self._entries
        for queue in self._queues.values():
            while queue and queue[0][0] <= now:
                _, key = queue.popleft()
                entry = entries.get(key)
                # A key rewritten since (a later expiry) or released is skipped here.
                if entry is not None and entry[2] <= now:
                    del entries[key]
        heap = self._expiry
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            entry = entries.get(key)
            if entry is not None and entry[2] <= now:
                del entries[key]
