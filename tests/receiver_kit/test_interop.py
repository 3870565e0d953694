"""Interoperability with other Standard Webhooks implementations: ``standardwebhooks`` and ``svix``.

Both directions: deliveries those packages sign verify with the kit, and the
kit's ``standard_headers`` / ``signed_request`` (what the sender sends) verify
with those packages.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timezone
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook

from receiver_kit import WebhookVerificationError, WebhookVerifier, standard_headers
from receiver_kit.testing import sample_payload, signed_request

SECRET = "whsec_" + base64.b64encode(b"interop-key-of-thirty-two-bytes!").decode()
IMPLEMENTATIONS = {"standardwebhooks": StandardWebhook, "svix": SvixWebhook}


def body_of(payload: Any) -> bytes:
    # Non-ASCII on purpose: the signature covers UTF-8 bytes, not a re-encoded string.
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize("name", list(IMPLEMENTATIONS))
def test_their_signature_verifies_with_the_kit(name):
    payload = sample_payload(summary="Acmé: visibilité ↑")
    body = body_of(payload)
    ts = int(time.time())
    signature = IMPLEMENTATIONS[name](SECRET).sign("msg_1", datetime.fromtimestamp(ts, tz=timezone.utc), body.decode())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(ts), "webhook-signature": signature}
    assert WebhookVerifier(SECRET).verify(body, headers) == payload
    with pytest.raises(WebhookVerificationError) as info:
        WebhookVerifier(SECRET).verify(body + b" ", headers)
    assert info.value.code == "no_matching_signature"


@pytest.mark.parametrize("name", list(IMPLEMENTATIONS))
def test_kit_signature_verifies_with_theirs(name):
    payload = sample_payload(summary="Acmé: visibilité ↑")
    req = signed_request(payload, SECRET)  # what the sender sends: both schemes
    verifier = IMPLEMENTATIONS[name](SECRET)
    wanted = {k: v for k, v in req.headers.items() if k.startswith("webhook-")}
    verifier.verify(req.body, wanted)  # raises on failure
    with pytest.raises(Exception, match="(?i)signature"):
        verifier.verify(req.body.replace(b"Acm", b"Evi"), wanted)


@pytest.mark.parametrize("name", list(IMPLEMENTATIONS))
def test_rotation_header_with_two_signatures_verifies_with_theirs(name):
    old = "whsec_" + base64.b64encode(b"o" * 32).decode()
    body = body_of(sample_payload())
    headers = standard_headers(body, [old, SECRET], msg_id="msg_rot")
    assert len(headers["webhook-signature"].split()) == 2
    IMPLEMENTATIONS[name](SECRET).verify(body, headers)
    IMPLEMENTATIONS[name](old).verify(body, headers)
