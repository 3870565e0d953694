"""``DjangoStore``: idempotency keys in your Django database, through the ORM.

Needs ``"receiver_kit.django"`` in ``INSTALLED_APPS`` and ``manage.py migrate``.
Claiming is race-free on every database Django supports, without locks held
across the handler:

1. ``INSERT`` in a savepoint: the primary key lets exactly one concurrent
   inserter win; the others get ``IntegrityError``.
2. Otherwise a take-over of an expired claim: ``UPDATE … WHERE key = … AND
   expires_at <= now``, which at most one taker's statement matches.
3. Otherwise the current state is read and returned.

Keep the claim out of a request-wide transaction (``ATOMIC_REQUESTS``): decorate
the view with ``django.db.transaction.non_atomic_requests``, or give the store
its own database alias (``using=``), so other workers see the claim at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.db import DEFAULT_DB_ALIAS, IntegrityError, transaction

from ..idempotency.base import (
    ACQUIRED,
    COMPLETED,
    DEFAULT_COMPLETED_TTL,
    DEFAULT_PROCESSING_TTL,
    PROCESSING,
    Claim,
    TTLs,
    new_token,
)
from .models import IdempotencyKey


class DjangoStore(TTLs):
    """Idempotency store in the ``receiver_kit_idempotency`` table of database ``using``.

    Expiry uses this host's clock (Unix seconds): hosts sharing the table should
    run NTP. Call :meth:`purge_expired` from a periodic job to delete old rows.
    """

    def __init__(
        self,
        using: str = DEFAULT_DB_ALIAS,
        processing_ttl: float = DEFAULT_PROCESSING_TTL,
        completed_ttl: float = DEFAULT_COMPLETED_TTL,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(processing_ttl, completed_ttl)
        self.using = using
        self._clock = clock

    def _rows(self) -> Any:
        return IdempotencyKey.objects.using(self.using)

    def _insert(self, key: str, state: str, token: str, expires_at: float) -> bool:
        try:
            # A savepoint: a failed INSERT must not poison a transaction the caller has open.
            with transaction.atomic(using=self.using):
                self._rows().create(key=key, state=state, token=token, expires_at=expires_at)
            return True
        except IntegrityError:
            return False

    def claim(self, key: str, *, processing_ttl: float | None = None) -> Claim:
        """Insert a processing claim, or take over an expired one, or report the current state."""
        ttl = self.processing_ttl_for(processing_ttl)
        # A row released between our INSERT and SELECT is gone: try again, a few times at most.
        for _ in range(5):
            token, now = new_token(), self._clock()
            if self._insert(key, PROCESSING, token, now + ttl):
                return Claim(ACQUIRED, token)
            took_over = (
                self._rows()
                .filter(key=key, expires_at__lte=now)
                .update(state=PROCESSING, token=token, expires_at=now + ttl)
            )
            if took_over == 1:
                return Claim(ACQUIRED, token)
            state = self._rows().filter(key=key).values_list("state", flat=True).first()
            if state is not None:
                return Claim(COMPLETED if state == COMPLETED else PROCESSING)
        return Claim(PROCESSING)  # keys churning that fast: let the sender retry

    def complete(self, key: str, token: str, *, completed_ttl: float | None = None) -> bool:
        """Mark ``key`` completed unless another claim owns it now."""
        expires_at = self._clock() + self.completed_ttl_for(completed_ttl)
        if self._rows().filter(key=key, token=token).update(state=COMPLETED, expires_at=expires_at) == 1:
            return True
        # Our claim's row is gone (released by a take-over that failed): the work is done, record it.
        return self._insert(key, COMPLETED, token, expires_at)

    def release(self, key: str, token: str) -> bool:
        """Delete ``key`` if our claim still holds it in ``processing``."""
        deleted, _ = self._rows().filter(key=key, token=token, state=PROCESSING).delete()
        return bool(deleted == 1)

    def state(self, key: str) -> str | None:
        """``"processing"``, ``"completed"`` or ``None`` (unknown or expired): for tests and debugging."""
        state = self._rows().filter(key=key, expires_at__gt=self._clock()).values_list("state", flat=True).first()
        return str(state) if state is not None else None

    def purge_expired(self) -> int:
        """Delete every expired row; the number deleted."""
        deleted, _ = self._rows().filter(expires_at__lte=self._clock()).delete()
        return int(deleted)
