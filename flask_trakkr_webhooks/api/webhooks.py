"""Routes of the webhooks resource (being written)."""
from __future__ import annotations

from flask import Blueprint


def register(bp: Blueprint) -> None:
    """Add the webhooks routes to ``bp``."""
