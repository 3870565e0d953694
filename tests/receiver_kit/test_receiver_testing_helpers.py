"""receiver_kit.testing produces what the sender produces (checked independently), and the import rule."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from receiver_kit.testing import SignedRequest, encode_body, sample_payload, signed_request

WHSEC = "whsec_" + base64.b64encode(b"t" * 32).decode()
ROOT = Path(__file__).resolve().parents[2]


def test_sample_payload_has_the_wire_format_shape():
    payload = sample_payload("citation_lost", data={"source": "x"}, test=True)
    assert set(payload) == {"event", "brand", "workflow", "summary", "meta"}
    assert set(payload["event"]) == {"id", "type", "timestamp", "data"}
    assert payload["event"]["type"] == "citation_lost" and payload["event"]["data"] == {"source": "x"}
    assert payload["event"]["timestamp"].endswith("Z")
    meta = payload["meta"]
    assert meta["event_id"] == payload["event"]["id"] and meta["event_id"].startswith("evt_")
    assert (meta["source"], meta["version"], meta["test"]) == ("trakkr", "1.0", True)
    assert sample_payload()["meta"]["event_id"] != sample_payload()["meta"]["event_id"]


def test_both_schemes_verify_with_independent_code():
    payload = sample_payload(event_id="evt_fixed")
    req = signed_request(payload, WHSEC)
    assert isinstance(req, SignedRequest)
    expected = "sha256=" + hmac.new(WHSEC.encode(), req.body, hashlib.sha256).hexdigest()
    assert req.headers["X-Trakkr-Signature"] == expected
    assert req.headers["webhook-id"] == "evt_fixed"
    assert Webhook(WHSEC).verify(req.body, req.headers) == payload
    assert req.headers["Content-Type"] == "application/json"
    assert json.loads(req.body) == payload


def test_scheme_selection_and_explicit_id_and_timestamp():
    trakkr = signed_request({"a": 1}, WHSEC, scheme="trakkr")
    assert "webhook-signature" not in trakkr.headers and "X-Trakkr-Signature" in trakkr.headers
    std = signed_request({"a": 1}, WHSEC, scheme="standard", msg_id="msg_1", timestamp=1_700_000_000)
    assert "X-Trakkr-Signature" not in std.headers
    assert (std.headers["webhook-id"], std.headers["webhook-timestamp"]) == ("msg_1", "1700000000")
    assert signed_request({"a": 1}, WHSEC, scheme="standard").headers["webhook-id"].startswith("msg_")
    with pytest.raises(ValueError, match="scheme must be one of both, trakkr, standard"):
        signed_request({"a": 1}, WHSEC, scheme="hmac")


def test_bytes_are_signed_exactly_and_lists_sign_with_every_secret():
    other = "whsec_" + base64.b64encode(b"u" * 32).decode()
    req = signed_request(b' {"a": 1} ', [WHSEC, other])
    assert req.body == b' {"a": 1} '
    assert len(req.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(other).verify(req.body, req.headers) == {"a": 1}
    assert req.kwargs() == {"data": req.body, "headers": req.headers}


def test_encode_body_is_compact_utf8():
    assert encode_body({"name": "Zoë", "n": [1, 2]}) == '{"name":"Zoë","n":[1,2]}'.encode()


def test_import_receiver_kit_needs_the_standard_library_only():
    code = (
        "import sys, receiver_kit, receiver_kit.idempotency, receiver_kit.testing\n"
        "from receiver_kit.idempotency import MemoryStore, RedisStore\n"
        "third_party = {'flask', 'werkzeug', 'sqlalchemy', 'redis', 'standardwebhooks', 'jinja2'}\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & third_party)\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
