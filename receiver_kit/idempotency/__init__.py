"""Idempotency stores for ``receiver_kit.flask.idempotent`` (or your own code).

``MemoryStore`` (one process), ``RedisStore`` (a Redis/Valkey client) and
``SQLStore`` (SQLAlchemy Core). ``SQLStore`` is loaded on first use, so importing
this package needs neither SQLAlchemy nor redis.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import ACQUIRED, COMPLETED, PROCESSING, Claim, IdempotencyStore, event_id_of
from .base import DEFAULT_COMPLETED_TTL, DEFAULT_PROCESSING_TTL
from .memory import MemoryStore
from .redis_store import RedisStore

if TYPE_CHECKING:
    from .sql_store import SQLStore

__all__ = [
    "ACQUIRED",
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
