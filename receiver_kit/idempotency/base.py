"""What every idempotency store promises, and the pieces they share.

A store remembers one key per event (``meta.event_id``) in one of two states:

* ``processing``: a handler has claimed the event and is running it. The claim
  lives ``processing_ttl`` seconds; after that the handler is presumed dead
  (its process crashed or was killed) and the next delivery may take it over.
  Choose a TTL above your handler's worst-case run time: a handler still running
  when its claim expires can be run a second time by a take-over.
* ``completed``: the handler finished; repeats are answered without running it
  for ``completed_ttl`` seconds (long enough to cover the sender's retries and
  any manual redelivery you want absorbed).

Every claim has a random token. ``complete`` and ``release`` act only on the
caller's own claim, so a slow handler whose claim was taken over can never
release or overwrite the claim of the handler that took over.
"""

from __future__ import annotations

import secrets
from typing import Any, NamedTuple, Protocol, runtime_checkable

ACQUIRED = "acquired"
PROCESSING = "processing"
COMPLETED = "completed"

DEFAULT_PROCESSING_TTL = 60.0
DEFAULT_COMPLETED_TTL = 7 * 24 * 3600.0


class Claim(NamedTuple):
    """The answer to ``store.claim(key)``.

    ``state`` is ``"acquired"`` (run the handler, then ``complete``/``release``
    with ``token``), ``"processing"`` (someone else is running it) or
    ``"completed"`` (already done). Immutable; a named tuple rather than a frozen
    dataclass because it is made on every request (a third of the cost of a
    ``MemoryStore`` claim went to the dataclass's ``__init__``).
    """

    state: str
    token: str | None = None

    @property
    def acquired(self) -> bool:
        """True when the caller now owns the key and must run the handler."""
        return self.state == ACQUIRED


@runtime_checkable
class IdempotencyStore(Protocol):
    """The interface ``receiver_kit.flask.idempotent`` needs; write your own to fit another backend."""

    processing_ttl: float
    completed_ttl: float

    def claim(self, key: str, *, processing_ttl: float | None = None) -> Claim:
        """Atomically claim ``key`` unless it is completed or claimed by a live handler."""
        ...

    def complete(self, key: str, token: str, *, completed_ttl: float | None = None) -> bool:
        """Mark ``key`` completed if the claim ``token`` still owns it (or nobody does); True if marked."""
        ...

    def release(self, key: str, token: str) -> bool:
        """Forget ``key`` if the claim ``token`` still owns it, so a retry can run; True if released."""
        ...


def event_id_of(payload: Any) -> str | None:
    """The default idempotency key: ``payload["meta"]["event_id"]`` if a non-empty string, else ``None``."""
    meta = payload.get("meta") if isinstance(payload, dict) else None
    event_id = meta.get("event_id") if isinstance(meta, dict) else None
    return event_id if isinstance(event_id, str) and event_id else None


def new_token() -> str:
    """A fresh, unguessable claim token."""
    return secrets.token_hex(16)


def check_ttl(name: str, value: float) -> float:
    """``value`` as a positive float, or ``ValueError`` naming ``name``."""
    value = float(value)
    if not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
    return value


class TTLs:
    """The two TTLs every store keeps, validated, with per-call overrides."""

    def __init__(self, processing_ttl: float, completed_ttl: float) -> None:
        self.processing_ttl = check_ttl("processing_ttl", processing_ttl)
        self.completed_ttl = check_ttl("completed_ttl", completed_ttl)

    def processing_ttl_for(self, override: float | None) -> float:
        """``override`` if given (validated), else the store's processing TTL."""
        return self.processing_ttl if override is None else check_ttl("processing_ttl", override)

    def completed_ttl_for(self, override: float | None) -> float:
        """``override`` if given (validated), else the store's completed TTL."""
        return self.completed_ttl if override is None else check_ttl("completed_ttl", override)
