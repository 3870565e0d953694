"""One attempt (``flask_trakkr_webhooks/attempt.py``): the SSRF guard at send time, a refused
connection, a template webhook's rendered body, the timeout as a bound on the whole attempt,
echoed secrets redacted, a 503's ``Retry-After``.

Real Redis, a real database and real HTTP receivers (trickling ones from
``tests/e2e/test_attempt_e2e.py``); the job functions are called directly.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from e2e.helpers import delivery_ids as _ids
from e2e.helpers import delivery_rows as _deliveries
from e2e.helpers import emit, make_webhook
from e2e.helpers import process as _run
from e2e.receiver import Reply
from e2e.test_attempt_e2e import BODY, ECHO, HEADERS, STATUS, Trickler
from flask_trakkr_webhooks import attempt
from flask_trakkr_webhooks.attempt import REDACTED, redact, secrets_of
from flask_trakkr_webhooks.message import Endpoint


@pytest.fixture
def new_app_config():
    """What ``new_app`` adds to every app of this module: a short stuck-claim time."""
    return {"TRAKKR_WEBHOOKS_STUCK_AFTER": 5}


def test_the_ssrf_guard_fails_a_private_address_permanently(new_app, receiver):
    app = new_app(TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=False)
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    _run(app, _ids(app))
    [row] = _deliveries(app)
    assert row.status == "failed"
    [attempt] = row.attempts
    assert attempt.error_type == "BlockedAddress" and "loopback" in attempt.error_message
    assert "TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS" in attempt.error_message
    assert receiver.received == []


def test_connection_refused_is_retried(new_app):
    from flask_trakkr_webhooks.testing import free_port

    app = new_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[60])
    make_webhook(app, f"http://127.0.0.1:{free_port()}/hooks")
    emit(app)
    _run(app, _ids(app))
    [row] = _deliveries(app)
    assert row.status == "retrying"
    [tried] = row.attempts
    assert tried.error_type == "ConnectionError" and tried.status_code is None
    # The reason, not the client's connection object: "Failed to establish a new connection to ...".
    assert "Connection refused" in tried.error_message and "object at 0x" not in tried.error_message


def test_a_pool_closed_under_the_attempt_is_a_connection_error_retried(new_app, receiver, monkeypatch):
    # Another host's pool can evict this one from the client's pool manager mid-way; the
    # attempt is retried like any connection error, never failed for good.
    from urllib3.exceptions import ClosedPoolError

    from flask_trakkr_webhooks import ssrf

    def closed(self: ssrf.PinnedClient, outgoing: ssrf.Outgoing, **kwargs: object) -> None:
        raise ClosedPoolError(None, "Pool is closed.")  # type: ignore[arg-type]

    app = new_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[60])
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    monkeypatch.setattr(ssrf.PinnedClient, "send", closed)
    _run(app, _ids(app))
    [row] = _deliveries(app)
    [tried] = row.attempts
    assert row.status == "retrying" and tried.outcome == "retry"
    assert tried.error_type == "ConnectionError" and "Pool is closed" in tried.error_message
    assert receiver.received == []


def test_a_template_webhook_gets_the_rendered_body(new_app, receiver):
    app = new_app()
    make_webhook(
        app,
        receiver.url + "/hooks",
        provider="slack",
        template={"text": "{{brand.name}} {{event.type}}", "score": "{{event.data.current_score}}"},
    )
    emit(app)
    _run(app, _ids(app))
    [got] = receiver.received
    assert got.json == {"text": "Acme visibility_changed", "score": 57.5} and got.signature_ok


# -- the timeout bounds the whole attempt ---------------------------------------------------------------

TIMEOUT = 1.0


@pytest.mark.parametrize("mode", [STATUS, HEADERS, BODY])
def test_a_trickling_receiver_is_a_timeout_at_the_timeout(new_app, mode):
    # Pieces every 0.4 s: a per-read timeout of 1 s never fires, so before this bound the
    # attempt lasted as long as the receiver cared to trickle (minutes).
    with Trickler(mode, interval=0.4) as rx:
        app = new_app(TRAKKR_WEBHOOKS_TIMEOUT=TIMEOUT, TRAKKR_WEBHOOKS_RETRY_DELAYS=[60])
        make_webhook(app, rx.url + "/hooks")
        emit(app)
        started = time.monotonic()
        _run(app, _ids(app))
        took = time.monotonic() - started
    [row] = _deliveries(app)
    [tried] = row.attempts
    assert row.status == "retrying" and tried.outcome == "retry"
    assert tried.status_code is None and tried.error_type == "ReadTimeout"
    assert (TIMEOUT - 0.05) * 1000 <= tried.duration_ms < (TIMEOUT + 0.5) * 1000
    assert took < TIMEOUT + 2.0  # the batch around it: claim, record
    if mode == BODY:
        assert "HTTP 200" in tried.error_message and "TRAKKR_WEBHOOKS_TIMEOUT" in tried.error_message


def test_a_trickled_body_within_the_kept_part_is_read_and_the_rest_is_not(new_app):
    # RESPONSE_BODY_LIMIT 3: three trickled bytes are all that is read, well within the timeout.
    with Trickler(BODY, interval=0.2) as rx:
        app = new_app(TRAKKR_WEBHOOKS_TIMEOUT=TIMEOUT, TRAKKR_WEBHOOKS_RESPONSE_BODY_LIMIT=3)
        make_webhook(app, rx.url + "/hooks")
        emit(app)
        _run(app, _ids(app))
    [row] = _deliveries(app)
    assert row.status == "succeeded" and row.attempts[0].response_body == "xxx"
    assert row.attempts[0].duration_ms < TIMEOUT * 1000


# -- a 503's Retry-After ---------------------------------------------------------------------------------


def test_a_503_with_retry_after_is_retried_after_it_not_the_backoff(new_app, receiver):
    app = new_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[1, 2, 4], TRAKKR_WEBHOOKS_MAX_RETRY_AFTER=300)
    make_webhook(app, receiver.url + "/hooks")
    receiver.script(Reply(503, {"Retry-After": "120"}))
    emit(app)
    before = datetime.now(timezone.utc)
    _run(app, _ids(app))
    [row] = _deliveries(app)
    assert row.status == "retrying" and row.attempts[0].status_code == 503
    waits = (row.next_attempt_at.replace(tzinfo=timezone.utc) - before).total_seconds()
    assert 115 <= waits <= 125, waits


def test_a_503_retry_after_is_capped_by_max_retry_after(new_app, receiver):
    app = new_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[1, 2, 4], TRAKKR_WEBHOOKS_MAX_RETRY_AFTER=30)
    make_webhook(app, receiver.url + "/hooks")
    receiver.script(Reply(503, {"Retry-After": "86400"}))
    emit(app)
    before = datetime.now(timezone.utc)
    _run(app, _ids(app))
    [row] = _deliveries(app)
    waits = (row.next_attempt_at.replace(tzinfo=timezone.utc) - before).total_seconds()
    assert 25 <= waits <= 35, waits


# -- echoed secrets are redacted -------------------------------------------------------------------------

TOKEN = "tok_PARTNER_abc/def+ghi"
SIGNING = "whsec_c2VjcmV0LWtleS1mb3ItdGhlLXVuaXQtdGVzdHM="
PREVIOUS = "whsec_b2xkLWtleS1pbi1pdHMtZ3JhY2UtcGVyaW9k"


def _endpoint(**fields):
    values = dict(url="https://hooks.example/in", auth_type="bearer", auth_token=TOKEN, signing_secret=SIGNING)
    values.update(fields)
    return Endpoint(**values)


def test_secrets_of_a_bearer_webhook_with_both_signing_secrets():
    found = secrets_of(_endpoint(previous_signing_secret=PREVIOUS))
    for secret in (TOKEN, f"Bearer {TOKEN}", SIGNING, SIGNING[len("whsec_") :], PREVIOUS, PREVIOUS[6:]):
        assert secret in found
    assert TOKEN.replace("/", "\\/") in found  # as PHP's json_encode writes it
    assert [len(s) for s in found] == sorted((len(s) for s in found), reverse=True)  # longest first


def test_secrets_of_basic_and_api_key_webhooks():
    basic = secrets_of(_endpoint(auth_type="basic", auth_token=None, auth_username="ops", auth_password="pw-1x"))
    encoded = base64.b64encode(b"ops:pw-1x").decode()
    assert {"pw-1x", f"Basic {encoded}", encoded} <= set(basic) and "ops" not in basic  # the username is no secret
    key = secrets_of(_endpoint(auth_type="api_key", auth_token=None, api_key_header="X-Key", api_key_value="k-42"))
    assert "k-42" in key and "X-Key" not in key


def test_secrets_of_nothing():
    assert secrets_of(None) == ()
    assert secrets_of(Endpoint(url="https://hooks.example/in")) == ()


def test_redact_replaces_every_occurrence_and_leaves_the_rest():
    found = secrets_of(_endpoint())
    # The last value as PHP's json_encode writes it: "/" escaped as "\\/".
    php = TOKEN.replace("/", "\\/")
    echoed = json.dumps({"authorization": f"Bearer {TOKEN}", "again": TOKEN})[:-1] + f', "php": "{php}"}}'
    out = redact(echoed, found)
    assert TOKEN not in out and "abc" not in out and out.count(REDACTED) == 3
    assert json.loads(out) == {"authorization": REDACTED, "again": REDACTED, "php": REDACTED}
    assert redact("nothing to hide", found) == "nothing to hide"
    assert redact("anything", ()) == "anything"


class _Streamed:
    """What ``_read_limited`` reads: the answer's ``stream`` in small pieces."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, amt: int, decode_content: bool = True) -> Iterator[bytes]:
        for start in range(0, len(self.data), 7):
            yield self.data[start : start + 7]


@pytest.mark.parametrize("cut", range(1, len(TOKEN) + 1))
def test_a_secret_cut_by_the_body_limit_leaves_no_part_of_it(cut):
    prefix = b"x" * 20
    limit = len(prefix) + cut  # the limit falls inside the secret (or just after it)
    body = attempt._read_limited(_Streamed(prefix + TOKEN.encode() + b" trailing"), limit, secrets_of(_endpoint()))
    assert body == "x" * 20 + REDACTED


def test_a_body_cut_by_the_limit_keeps_its_tail_when_it_starts_no_secret():
    found = secrets_of(_endpoint())
    assert attempt._read_limited(_Streamed(b"x" * 30), 25, found) == "x" * 25
    assert attempt._read_limited(_Streamed(b"ab"), 25, found) == "ab"


def test_an_echoing_receiver_gets_stored_with_the_secrets_redacted(new_app):
    expires = datetime.now(timezone.utc) + timedelta(hours=1)
    with Trickler(ECHO, extra={"Secret": SIGNING, "Previous": PREVIOUS}) as rx:
        app = new_app()
        make_webhook(
            app,
            rx.url + "/hooks",
            auth_token=TOKEN,
            signing_secret=SIGNING,
            previous_signing_secret=PREVIOUS,
            previous_secret_expires_at=expires,
        )
        emit(app)
        _run(app, _ids(app))
        [request] = rx.requests
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    [row] = _deliveries(app)
    [tried] = row.attempts
    assert tried.status_code == 200 and row.status == "succeeded"
    stored = json.dumps({"body": tried.response_body, "headers": tried.response_headers})
    for secret in (TOKEN, SIGNING, PREVIOUS, SIGNING[6:], PREVIOUS[6:]):
        assert secret not in stored
    assert json.loads(tried.response_body)["headers"]["Authorization"] == REDACTED
    assert tried.response_headers["X-Echo-Secret"] == tried.response_headers["X-Echo-Previous"] == REDACTED
    assert json.loads(tried.response_body)["headers"]["X-Trakkr-Event"] == "visibility_changed"  # the rest is kept
