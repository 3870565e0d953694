"""The baseline's RQ job, in a module of its own: what a user writes for one delivery.

Kept apart from :mod:`bench.baseline` so a forking ``rq worker``'s job process imports only
this (and ``requests``), as a user's small jobs module would, not the benchmark's harness.
"""

from __future__ import annotations

import hashlib
import hmac

import requests


def deliver(url: str, body: bytes, secret: str) -> int:
    """Sign, POST, fail on a non-2xx answer (RQ records the failure)."""
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    response = requests.post(
        url, data=body, headers={"Content-Type": "application/json", "X-Trakkr-Signature": signature}, timeout=10
    )
    response.raise_for_status()
    return response.status_code
