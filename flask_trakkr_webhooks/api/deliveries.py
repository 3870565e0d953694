"""Routes of the deliveries resource (being written)."""
from __future__ import annotations

from flask import Blueprint


def register(bp: Blueprint) -> None:
    """Add the deliveries routes to ``bp``."""
