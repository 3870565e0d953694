"""End to end: emit in the host's transaction, a real worker process, a real receiver.

Every wait is bounded. Attempt spacing is measured at the receiver (arrival times).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from e2e.conftest import ROOT, TESTS, wait_until
from e2e.helpers import deliveries, delivery_status, emit, make_webhook
from e2e.hostapp import env_for
from e2e.receiver import Hang, Reply, redirect
from flask_trakkr_webhooks import __version__, get_state
from flask_trakkr_webhooks.testing import EmbeddedRedis

pytestmark = pytest.mark.e2e


def _terminal(app, event_id, timeout=20.0):
    return wait_until(
        lambda: (delivery_status(app, event_id) in ("succeeded", "failed", "cancelled")) and deliveries(app, event_id),
        timeout,
        f"delivery of {event_id} to finish",
    )[0]


def test_signed_authenticated_delivery_matches_the_wire_format(e2e_app, receiver, start_worker):
    app = e2e_app()
    hook_id = make_webhook(app, receiver.url + "/hooks", headers={"X-Team": "growth", "x-trakkr-event": "forged"})
    start_worker(app)
    event_id = emit(app)

    got = receiver.wait_for(1, timeout=20)[0]
    delivery = _terminal(app, event_id)
    assert got.signature_ok is True, "receiver_kit.verify_signature refused the signature"
    assert got.auth_ok is True
    assert got.path == "/hooks"
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["User-Agent"] == f"flask-trakkr-webhooks/{__version__}"
    assert got.headers["X-Trakkr-Event"] == "visibility_changed"  # the custom header did not override it
    assert got.headers["X-Trakkr-Delivery"] == delivery["id"]
    assert got.headers["X-Team"] == "growth"
    body = got.json
    assert body["event"]["id"] == body["meta"]["event_id"] == event_id
    assert body["meta"]["source"] == "trakkr" and body["meta"]["version"] == "1.0"
    assert body["summary"] == "Acme's visibility rose 40.2% (41.0 \u2192 57.5)"
    assert delivery["webhook_id"] == hook_id
    assert delivery["status"] == "succeeded" and delivery["attempt_count"] == 1
    [attempt] = delivery["attempts"]
    assert attempt["status_code"] == 200 and attempt["outcome"] == "succeeded"
    assert attempt["response_body"] == "ok" and attempt["response_headers"]["Content-Length"] == "2"


def test_500_500_500_200_gets_four_attempts_spaced_1_2_4_seconds(e2e_app, receiver, start_worker, record_property):
    app = e2e_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[1, 2, 4])
    make_webhook(app, receiver.url + "/hooks")
    receiver.script(Reply(500), Reply(500), Reply(500))
    start_worker(app)
    event_id = emit(app)

    got = receiver.wait_for(4, timeout=30)
    delivery = _terminal(app, event_id)
    gaps = [round(b.at - a.at, 3) for a, b in zip(got, got[1:], strict=False)]
    record_property("attempt_spacing_s", gaps)
    print(f"attempt spacing: {gaps}")
    for gap, delay in zip(gaps, (1, 2, 4), strict=False):
        assert delay <= gap < delay + 1.0, gaps
    assert delivery["status"] == "succeeded"
    assert [a["outcome"] for a in delivery["attempts"]] == ["retry", "retry", "retry", "succeeded"]
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 500, 200]
    assert len({r.json["meta"]["event_id"] for r in got}) == 1
    assert len({r.headers["X-Trakkr-Delivery"] for r in got}) == 1


def test_429_with_retry_after_waits_for_it(e2e_app, receiver, start_worker, record_property):
    app = e2e_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[1, 2, 4])
    make_webhook(app, receiver.url + "/hooks")
    receiver.script(Reply(429, {"Retry-After": "3"}))
    start_worker(app)
    event_id = emit(app)

    first, second = receiver.wait_for(2, timeout=20)
    delivery = _terminal(app, event_id)
    waited = second.at - first.at
    record_property("retry_after_wait_s", round(waited, 3))
    print(f"Retry-After 3 waited {waited:.3f}s")
    assert 3.0 <= waited < 4.0
    assert delivery["status"] == "succeeded"
    assert [a["status_code"] for a in delivery["attempts"]] == [429, 200]


def test_404_fails_after_exactly_one_attempt(e2e_app, receiver, start_worker):
    app = e2e_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[0.2, 0.2, 0.2])
    make_webhook(app, receiver.url + "/hooks")
    receiver.script(Reply(404), Reply(404), Reply(404), Reply(404))
    start_worker(app)
    event_id = emit(app)

    delivery = _terminal(app, event_id)
    time.sleep(1.0)  # a retry would have come by now (delays are 0.2 s)
    assert len(receiver.received) == 1
    assert delivery["status"] == "failed" and delivery["last_status_code"] == 404
    [attempt] = deliveries(app, event_id)[0]["attempts"]
    assert attempt["outcome"] == "failed" and attempt["status_code"] == 404


def test_a_hanging_receiver_is_timed_out_and_retried(e2e_app, receiver, start_worker):
    app = e2e_app(TRAKKR_WEBHOOKS_TIMEOUT=1, TRAKKR_WEBHOOKS_RETRY_DELAYS=[0.5, 1, 2])
    make_webhook(app, receiver.url + "/hooks")
    receiver.script(Hang(10))
    start_worker(app)
    event_id = emit(app)

    receiver.wait_for(2, timeout=20)
    delivery = _terminal(app, event_id)
    first, second = delivery["attempts"]
    assert first["outcome"] == "retry" and first["status_code"] is None
    assert first["error_type"] in ("ReadTimeout", "Timeout")
    assert 900 <= first["duration_ms"] < 3000
    assert second["status_code"] == 200 and delivery["status"] == "succeeded"


def test_a_redirect_is_a_failure_and_never_followed(e2e_app, receiver, start_worker):
    app = e2e_app()
    make_webhook(app, receiver.url + "/hooks")
    receiver.script(redirect(receiver.url + "/elsewhere"))
    start_worker(app)
    event_id = emit(app)

    delivery = _terminal(app, event_id)
    time.sleep(0.5)
    assert [r.path for r in receiver.received] == ["/hooks"]
    assert delivery["status"] == "failed" and delivery["last_status_code"] == 302
    assert "redirects are not followed" in delivery["last_error"]


def test_rollback_after_emit_sends_nothing(e2e_app, receiver, start_worker):
    app = e2e_app()
    make_webhook(app, receiver.url + "/hooks")
    start_worker(app)
    emit(app, commit=False)
    committed = emit(app)  # proves the worker is up: this one arrives

    receiver.wait_for(1, timeout=20)
    time.sleep(0.5)
    assert len(receiver.received) == 1
    assert receiver.received[0].json["event"]["id"] == committed
    assert [d["event_id"] for d in deliveries(app)] == [committed]


def test_redis_down_during_emit_then_dispatch_delivers(e2e_app, receiver, start_worker):
    server = EmbeddedRedis().start()
    try:
        app = e2e_app(TRAKKR_WEBHOOKS_REDIS_URL=server.url)
        make_webhook(app, receiver.url + "/hooks")
        server.stop()

        event_id = emit(app)  # the commit succeeds although Redis is down
        assert delivery_status(app, event_id) == "pending"

        server = EmbeddedRedis(port=server.port).start()
        dispatch = start_worker(app, "dispatch")
        assert dispatch.proc.wait(30) == 0, dispatch.output()
        assert "enqueued 1 deliveries" in dispatch.output()
        assert delivery_status(app, event_id) == "queued"
        start_worker(app)
        got = receiver.wait_for(1, timeout=20)
        assert got[0].json["event"]["id"] == event_id and got[0].signature_ok
        assert _terminal(app, event_id)["status"] == "succeeded"
    finally:
        server.stop()


def test_a_worker_killed_mid_delivery_is_recovered_by_the_sweep(e2e_app, receiver, start_worker):
    # The receiver hangs longer than the test; the worker is SIGKILLed while it waits.
    app = e2e_app(TRAKKR_WEBHOOKS_TIMEOUT=30, TRAKKR_WEBHOOKS_STUCK_AFTER=2, TRAKKR_WEBHOOKS_SWEEP_INTERVAL=0.5)
    make_webhook(app, receiver.url + "/hooks")
    receiver.script(Hang(60))
    first_worker = start_worker(app)
    event_id = emit(app)
    receiver.wait_for(1, timeout=20)
    assert delivery_status(app, event_id) == "sending"

    first_worker.kill()  # SIGKILL the worker, its scheduler and everything in its group
    first_worker.proc.wait(10)
    assert delivery_status(app, event_id) == "sending"

    start_worker(app)
    got = receiver.wait_for(2, timeout=30)
    delivery = _terminal(app, event_id)
    assert delivery["status"] == "succeeded"
    assert got[1].json["meta"]["event_id"] == event_id
    lost, second = delivery["attempts"]
    assert (lost["number"], lost["error_type"], lost["outcome"]) == (1, "WorkerLost", "retry")
    assert (second["number"], second["status_code"]) == (2, 200)


#: A plain ``rq worker`` may take up to a minute to exit after its burst: RQ's command
#: listener waits 60 s at a time and redis-py 8.2's ``stop()`` joins it (``DeliveryWorker``
#: wakes every second; tests/test_worker.py).
PLAIN_RQ_TIMEOUT = 150


def _plain_rq_worker(app, env_app: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``rq worker --burst --with-scheduler QUEUE`` exactly as RQ ships it: no job or worker class."""
    settings = get_state(app).settings
    env = {k: v for k, v in os.environ.items() if k not in ("FLASK_APP", "TRAKKR_WEBHOOKS_APP")}
    env.update(env_for(app), PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS)]), **env_app)
    return subprocess.run(
        [sys.executable, "-m", "rq.cli", "worker", "--burst", "--with-scheduler", "--url", settings.redis_url]
        + [settings.queue],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=PLAIN_RQ_TIMEOUT,
    )


def test_a_truly_plain_rq_worker_delivers_with_flask_app_set(e2e_app, receiver):
    app = e2e_app()
    make_webhook(app, receiver.url + "/hooks")
    event_id = emit(app)
    done = _plain_rq_worker(app, {"FLASK_APP": "e2e.hostapp:create_app"})
    assert done.returncode == 0, done.stderr
    assert receiver.wait_for(1, timeout=5)[0].signature_ok
    assert _terminal(app, event_id)["status"] == "succeeded"


def test_a_plain_rq_worker_without_the_app_fails_the_job_in_one_line_and_loses_nothing(e2e_app, receiver):
    app = e2e_app()
    make_webhook(app, receiver.url + "/hooks")
    event_id = emit(app)
    done = _plain_rq_worker(app, {})
    output = done.stdout + done.stderr
    assert "flask_trakkr_webhooks jobs need the host app: set FLASK_APP" in output
    assert receiver.received == []
    # The job failed; its delivery is still open and the next worker with the app delivers it.
    result = app.test_cli_runner().invoke(args=["webhooks", "dispatch"])
    assert result.exit_code == 0 and "lost jobs 1" in result.output, result.output
    assert _plain_rq_worker(app, {"FLASK_APP": "e2e.hostapp:create_app"}).returncode == 0
    assert receiver.wait_for(1, timeout=5)[0].signature_ok
    assert _terminal(app, event_id)["status"] == "succeeded"


@pytest.mark.parametrize(
    "worker_class",
    [[], ["-w", "flask_trakkr_webhooks.worker.DeliveryWorker"]],
    ids=["rq-default-worker", "delivery-worker"],
)
def test_plain_rq_worker_with_the_job_class(e2e_app, receiver, worker_class):
    app = e2e_app()
    make_webhook(app, receiver.url + "/hooks")
    event_id = emit(app)
    settings = get_state(app).settings
    env = dict(
        os.environ,
        **env_for(app),
        PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS)]),
        TRAKKR_WEBHOOKS_APP="e2e.hostapp:create_app",
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rq.cli",
            "worker",
            "--burst",
            "--with-scheduler",
            "--url",
            settings.redis_url,
            "-j",
            "flask_trakkr_webhooks.worker.FlaskJob",
            *worker_class,
            settings.queue,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=PLAIN_RQ_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    assert receiver.wait_for(1, timeout=5)[0].signature_ok
    assert _terminal(app, event_id)["status"] == "succeeded"
