"""The per-attempt log line: its fields, text or JSON lines, and never a secret or a URL."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from e2e.helpers import delivery_ids, emit, make_webhook, process
from e2e.receiver import Receiver, Reply
from flask_trakkr_webhooks import observe

CONFIG = dict(
    TRAKKR_WEBHOOKS_REQUIRE_HTTPS=False,
    TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=True,
    TRAKKR_WEBHOOKS_TIMEOUT=2,
    TRAKKR_WEBHOOKS_RETRY_DELAYS=[60],
)
SECRET_PATH = "/services/T000/B000/s3cr3tPathToken"


def attempt_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The records of the per-attempt logger."""
    return [r for r in caplog.records if r.name == observe.attempt_log.name]


def deliver(app: Any, caplog: pytest.LogCaptureFixture, *answers: Reply) -> Receiver:
    """One event to one webhook (secret path, bearer and signing secret) answered with ``answers``."""
    with Receiver() as rx:
        rx.script(*answers)
        make_webhook(app, rx.url + SECRET_PATH)
        emit(app)
        with caplog.at_level(logging.INFO, logger=observe.attempt_log.name):
            process(app, delivery_ids(app))
        return rx


def test_json_lines_carry_the_attempt_and_no_secret(make_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(**CONFIG, TRAKKR_WEBHOOKS_LOG_FORMAT="json")
    rx = deliver(app, caplog, Reply(500, body=b"tok_e2e whsec_e2e"))
    [record] = attempt_lines(caplog)
    assert record.levelno == logging.INFO  # retried: not a failure yet
    line = json.loads(record.getMessage())
    [delivery_id] = delivery_ids(app)
    assert line == {
        "event": "webhook_attempt",
        "delivery_id": delivery_id,
        "event_id": line["event_id"],
        "webhook_id": line["webhook_id"],
        "event_type": "visibility_changed",
        "provider": "webhook",
        "attempt": 1,
        "result": "5xx",
        "status_code": 500,
        "outcome": "retry",
        "latency_ms": line["latency_ms"],
        "error_type": None,
    }
    assert line["event_id"].startswith("evt_") and line["webhook_id"].startswith("wh")
    assert isinstance(line["latency_ms"], float) and line["latency_ms"] > 0
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in ("tok_e2e", "whsec_e2e", "s3cr3tPathToken", rx.url):
        assert secret not in text


def test_text_lines_are_key_value_pairs_and_a_final_failure_is_a_warning(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(**{**CONFIG, "TRAKKR_WEBHOOKS_RETRY_DELAYS": []})
    deliver(app, caplog, Reply(404))
    [record] = attempt_lines(caplog)
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert message.startswith(f"delivery_id={delivery_ids(app)[0]} event_id=evt_")
    assert " provider=webhook attempt=1 result=4xx status_code=404 outcome=failed latency_ms=" in message
    assert "error_type" not in message  # None values are left out
    assert "s3cr3tPathToken" not in message


def test_a_timeout_logs_its_error_type_but_not_its_message(make_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(**{**CONFIG, "TRAKKR_WEBHOOKS_TIMEOUT": 0.3, "TRAKKR_WEBHOOKS_LOG_FORMAT": "json"})
    deliver(app, caplog, Reply(200, delay=2))
    [record] = attempt_lines(caplog)
    line = json.loads(record.getMessage())
    assert line["result"] == "timeout" and line["status_code"] is None
    assert line["error_type"] == "ReadTimeout"
    assert "s3cr3tPathToken" not in record.getMessage()


def test_format_line() -> None:
    record = {"event": "webhook_attempt", "delivery_id": "dlv_1", "status_code": None, "attempt": 2}
    assert observe.format_line(record, "text") == "delivery_id=dlv_1 attempt=2"
    assert json.loads(observe.format_line(record, "json")) == record
