"""End to end: Standard Webhooks signatures, secret rotation, 410 Gone, a failing streak and replay,
through a real ``flask webhooks worker`` process, real Redis and a real receiver on 127.0.0.1.

Every request the receiver got is checked with ``receiver_kit.WebhookVerifier`` (300 s
tolerance, legacy scheme off: the Standard Webhooks headers alone must vouch for it) and,
for ``whsec_`` secrets, with the ``standardwebhooks`` package.
"""

from __future__ import annotations

import json
from pathlib import Path

from standardwebhooks.webhooks import Webhook as StandardWebhook
from test_signing import verifies as _standard

from e2e.conftest import wait_until
from e2e.helpers import deliveries, emit, make_webhook
from e2e.receiver import Reply
from flask_trakkr_webhooks import get_state, ids, signing

PLAIN = "plain-secret-for-e2e-0123456789"


def _hook(app, webhook_id):
    with app.app_context():
        state = get_state(app)
        row = state.db.session.get(state.models.Webhook, webhook_id)
        out = dict(active=row.active, reason=row.disabled_reason, failures=row.consecutive_failures)
        state.db.session.remove()
        return out


def _finished(app, event_id, timeout=20):
    return wait_until(
        lambda: [d for d in deliveries(app, event_id) if d["status"] in ("succeeded", "failed", "cancelled")],
        timeout,
        f"the deliveries of {event_id} to finish",
    )


def test_standard_webhooks_headers_verify_for_both_secret_forms_and_survive_retries(e2e_app, receiver, start_worker):
    app = e2e_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[1])
    whsec = signing.generate_secret()
    make_webhook(app, receiver.url + "/whsec", signing_secret=whsec)
    make_webhook(app, receiver.url + "/plain", signing_secret=PLAIN)
    receiver.script(Reply(503))  # the first request is retried a second later
    start_worker(app)
    event_id = emit(app)
    got = receiver.wait_for(3, timeout=20)
    by_path: dict[str, list] = {}
    for request in got:
        by_path.setdefault(request.path, []).append(request)
        assert request.headers["webhook-id"] == event_id == request.json["meta"]["event_id"]
    for request in by_path["/whsec"]:
        assert _standard([whsec], request) and not _standard([PLAIN], request)
        assert StandardWebhook(whsec).verify(request.body, request.headers)["event"]["id"] == event_id
    for request in by_path["/plain"]:
        assert _standard([PLAIN], request) and not _standard([whsec], request)
        assert StandardWebhook(PLAIN.encode()).verify(request.body, request.headers)["event"]["id"] == event_id
    retried = next(requests for requests in by_path.values() if len(requests) == 2)
    assert int(retried[1].headers["webhook-timestamp"]) > int(retried[0].headers["webhook-timestamp"])
    assert {d["status"] for d in _finished(app, event_id)} == {"succeeded"}


def test_rotation_through_the_api_while_the_worker_runs(e2e_app, receiver, start_worker):
    app = e2e_app()
    old = signing.generate_secret()
    hook = make_webhook(app, receiver.url + "/h", signing_secret=old)
    start_worker(app)
    new = app.test_client().post(f"/webhooks/{hook}/rotate-secret").get_json()["signing_secret"]
    emit(app)
    got = receiver.wait_for(1, timeout=20)[0]
    assert _standard([old], got) and _standard([new], got) and _standard([new, old], got)
    assert StandardWebhook(old).verify(got.body, got.headers) and StandardWebhook(new).verify(got.body, got.headers)


def test_410_gone_disables_in_the_worker_and_the_host_is_told_once(e2e_app, receiver, start_worker, tmp_path):
    app = e2e_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[])
    log = Path(tmp_path / "disabled.jsonl")
    hook = make_webhook(app, receiver.url + "/gone")
    receiver.default = Reply(410, body=b"unsubscribed")
    start_worker(app, host="e2e.security_hostapp:create_app", env={"E2E_DISABLED_LOG": str(log)})
    first = emit(app)
    assert _finished(app, first)[0]["status"] == "failed"
    lines = wait_until(lambda: log.exists() and log.read_text().splitlines(), 10, "the on_disabled handler")
    [told] = [json.loads(line) for line in lines]
    assert told["id"] == hook and told["active"] is False and told["committed_active"] is False
    assert told["reason"].startswith("the endpoint answered 410 Gone to delivery dlv_")
    assert _hook(app, hook)["active"] is False
    assert deliveries(app, emit(app)) == []  # nothing more is sent to it
    assert len(receiver.received) == 1


def test_a_failing_streak_disables_then_replay_redelivers_with_the_original_ids(
    e2e_app, receiver, start_worker, tmp_path
):
    app = e2e_app(
        TRAKKR_WEBHOOKS_RETRY_DELAYS=[], TRAKKR_WEBHOOKS_DISABLE_AFTER_FAILURES=2, TRAKKR_WEBHOOKS_DISABLE_AFTER_HOURS=0
    )
    log = Path(tmp_path / "disabled.jsonl")
    secret = signing.generate_secret()
    hook = make_webhook(app, receiver.url + "/down", signing_secret=secret)
    start = ids.utcnow()
    receiver.default = Reply(500)
    start_worker(app, host="e2e.security_hostapp:create_app", env={"E2E_DISABLED_LOG": str(log)})
    failed = [emit(app)]
    _finished(app, failed[0])
    assert _hook(app, hook) == dict(active=True, reason=None, failures=1)
    failed.append(emit(app))
    _finished(app, failed[1])
    wait_until(lambda: log.exists() and log.read_text().strip(), 10, "the on_disabled handler")
    state = _hook(app, hook)
    assert state["active"] is False and state["reason"].startswith("2 deliveries in a row failed over 0.0 hours")
    missed = emit(app)  # while disabled

    receiver.default = Reply(200)
    client = app.test_client()
    assert client.patch(f"/webhooks/{hook}", json={"active": True}).get_json()["active"] is True
    answer = client.post(
        f"/webhooks/{hook}/replay", json={"since": ids.isoformat(start), "status": ["failed", "missed"]}
    )
    assert answer.status_code == 202
    assert [d["event_id"] for d in answer.get_json()["deliveries"]] == [*failed, missed]
    got = receiver.wait_for(5, timeout=20)[2:]
    assert sorted(r.headers["webhook-id"] for r in got) == sorted([*failed, missed])
    assert all(_standard([secret], r) and r.json["meta"]["event_id"] == r.headers["webhook-id"] for r in got)
    for event_id in [*failed, missed]:
        wait_until(
            lambda event_id=event_id: any(d["status"] == "succeeded" for d in deliveries(app, event_id)),
            20,
            f"the replay of {event_id}",
        )
    assert _hook(app, hook) == dict(active=True, reason=None, failures=0)
