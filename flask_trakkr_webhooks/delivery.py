"""Kept so jobs already in Redis keep working: they name ``flask_trakkr_webhooks.delivery.run_batch``.

The delivery path moved to :mod:`.jobs` (RQ entry points), :mod:`.claim`, :mod:`.engine`,
:mod:`.attempt` and :mod:`.record`; nothing in the package imports this module.
"""

from __future__ import annotations

from .jobs import run_batch

__all__ = ["run_batch"]
