"""The idempotency table, as a Django model (created by this app's migration).

Same table and columns as ``SQLStore``'s default (``receiver_kit_idempotency``:
``idempotency_key``, ``state``, ``token``, ``expires_at`` in Unix seconds).
"""

from __future__ import annotations

from django.db import models

TABLE_NAME = "receiver_kit_idempotency"


class IdempotencyKey(models.Model):  # type: ignore[misc]  # Django ships no type information
    """One event's idempotency key: ``processing`` (claimed by ``token``) or ``completed``, until ``expires_at``."""

    key = models.CharField(max_length=255, primary_key=True, db_column="idempotency_key")
    state = models.CharField(max_length=16)
    token = models.CharField(max_length=64)
    expires_at = models.FloatField(db_index=True)

    class Meta:
        app_label = "receiver_kit"
        db_table = TABLE_NAME

    def __str__(self) -> str:
        return f"{self.key} ({self.state})"
