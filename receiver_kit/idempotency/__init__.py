"""Idempotency stores for the adapters' ``idempotent`` (or your own code).

``MemoryStore`` (one process; also fine from ``async`` handlers), ``RedisStore``
(a Redis/Valkey client), ``AsyncRedisStore`` (a ``redis.asyncio`` client, for
FastAPI/Starlette), ``SQLStore`` (SQLAlchemy Core) and, in
``receiver_kit.django``, ``DjangoStore`` (the Django ORM). Importing this package
needs neither redis nor SQLAlchemy: ``SQLStore`` is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .async_redis_store import AsyncRedisStore
from .base import (
    ACQUIRED,
    COMPLETED,
    DEFAULT_COMPLETED_TTL,
    DEFAULT_PROCESSING_TTL,
    PROCESSING,
    Claim,
    IdempotencyStore,
    event_id_of,
)
from .memory import MemoryStore
from .redis_store import RedisStore

if TYPE_CHECKING:
    from .sql_store import SQLStore

__all__ = [
    "ACQUIRED",
    "AsyncRedisStore",
    "COMPLETED",
    "DEFAULT_COMPLETED_TTL",
    "DEFAULT_PROCESSING_TTL",
    "PROCESSING",
    "Claim",
    "IdempotencyStore",
    "MemoryStore",
    "RedisStore",
    "SQLStore",
    "event_id_of",
]


def __getattr__(name: str) -> Any:
    # Lazy: SQLAlchemy is imported only by code that asks for SQLStore.
    if name == "SQLStore":
        from .sql_store import SQLStore

        return SQLStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
