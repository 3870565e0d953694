"""Build correctly signed deliveries for your own endpoint's tests.

::

    from receiver_kit.testing import sample_payload, signed_request

    def test_my_endpoint(client):
        req = signed_request(sample_payload("report_completed"), secret="whsec_…")
        response = client.post("/hooks/trakkr", **req.kwargs())
        assert response.status_code == 200

``signed_request`` signs like the sender: ``X-Trakkr-Signature`` over the exact
body bytes and/or the Standard Webhooks headers.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .idempotency.base import event_id_of
from .keys import Secrets, secret_list
from .signature import SIGNATURE_HEADER, sign_payload
from .standard import standard_headers

SCHEMES = ("both", "trakkr", "standard")


@dataclass(frozen=True)
class SignedRequest:
    """A body and the headers that sign it; ``kwargs()`` fits Flask's test client and ``requests``."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def kwargs(self) -> dict[str, Any]:
        """``{"data": body, "headers": headers}`` for ``client.post(url, **req.kwargs())``."""
        return {"data": self.body, "headers": dict(self.headers)}


def encode_body(payload: Any) -> bytes:
    """``payload`` as compact UTF-8 JSON bytes (``bytes`` pass through unchanged)."""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sample_payload(
    event_type: str = "visibility_changed",
    *,
    event_id: str | None = None,
    data: dict[str, Any] | None = None,
    brand: dict[str, Any] | None = None,
    workflow: dict[str, Any] | None = None,
    summary: str | None = None,
    test: bool = False,
) -> dict[str, Any]:
    """A payload in Trakkr's generic format (the shape the sender posts), with a fresh ``evt_`` id."""
    event_id = event_id or f"evt_{secrets.token_hex(12)}"
    brand = brand or {"id": str(uuid.uuid4()), "name": "Acme", "website": "https://acme.example"}
    meta: dict[str, Any] = {"source": "trakkr", "version": "1.0", "event_id": event_id, "idempotency_key": event_id}
    if test:
        meta["test"] = True
    return {
        "event": {
            "id": event_id,
            "type": event_type,
            "timestamp": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "data": data if data is not None else {},
        },
        "brand": brand,
        "workflow": workflow,
        "summary": summary if summary is not None else f"{brand.get('name', 'Brand')}: {event_type}",
        "meta": meta,
    }


def signed_request(
    payload: Any,
    secret: Secrets,
    *,
    scheme: str = "both",
    msg_id: str | None = None,
    timestamp: int | None = None,
) -> SignedRequest:
    """Sign ``payload`` (a JSON-able value, or exact ``bytes``) the way the sender does.

    ``scheme``: ``"both"`` (what a sender with a signing secret sends),
    ``"trakkr"`` (``X-Trakkr-Signature`` only) or ``"standard"`` (Standard
    Webhooks only). With a list of secrets, ``webhook-signature`` carries one
    signature per secret and ``X-Trakkr-Signature`` uses the first.
    ``msg_id`` defaults to ``meta.event_id`` (else a random id); ``timestamp``
    to now (pass an old one to test your replay window).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, not {scheme!r}")
    body = encode_body(payload)
    keys = secret_list(secret)
    headers = {"Content-Type": "application/json"}
    if scheme in ("both", "trakkr"):
        headers[SIGNATURE_HEADER] = sign_payload(body, keys[0])
    if scheme in ("both", "standard"):
        if msg_id is None:
            msg_id = event_id_of(payload) or f"msg_{secrets.token_hex(12)}"
        ts = int(time.time()) if timestamp is None else int(timestamp)
        headers.update(standard_headers(body, keys, msg_id=msg_id, timestamp=ts))
    return SignedRequest(body, headers)
