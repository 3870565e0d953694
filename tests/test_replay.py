"""Replay (``flask_trakkr_webhooks/replay.py``) through ``POST /webhooks/<id>/replay``: what is
redelivered after an outage (failed, cancelled and missed events, with their event ids), ``since``
and ``limit``, and what is never replayed. The route's input validation is in ``test_api_webhooks.py``.

Real database, real Redis, a real HTTP receiver on 127.0.0.1; deliveries are processed in-process.
"""

from __future__ import annotations

from datetime import timedelta

from e2e.helpers import api_create as _create
from e2e.helpers import api_error as _error
from e2e.helpers import emit, new_brand
from e2e.helpers import process_open as _process
from e2e.helpers import webhook_row as _row
from e2e.receiver import Reply
from flask_trakkr_webhooks import get_state, ids, jobs

# -- replay ---------------------------------------------------------------------------------------------


def _replay(client, hook_id, **body):
    return client.post(f"/webhooks/{hook_id}/replay", json=body)


def _since(moment) -> str:
    return ids.isoformat(moment)


def _status_of(app, delivery_ids):
    with app.app_context():
        D = get_state(app).models.Delivery
        return {d.id: d.status for d in D.query.filter(D.id.in_(delivery_ids))}


def test_replay_after_an_outage_redelivers_failed_cancelled_and_missed_with_their_event_ids(
    local_app, local_client, plain_receiver
):
    start = ids.utcnow() - timedelta(seconds=1)
    hook = _create(local_client, plain_receiver.url + "/h", signing_secret="generate")["id"]
    plain_receiver.script(Reply(404), Reply(404))
    failed = [emit(local_app), emit(local_app)]
    _process(local_app)
    plain_receiver.script(Reply(410))
    gone, cancelled = emit(local_app), emit(local_app)
    with local_app.app_context():  # only the first: the second is still pending when the 410 disables the webhook
        D = get_state(local_app).models.Delivery
        jobs.process_batch(get_state(local_app), [D.query.filter_by(event_id=gone).one().id])
    missed = emit(local_app)  # while disabled: no delivery row at all
    assert _row(local_app, hook).active is False

    error = _error(_replay(local_client, hook, since=_since(start)), 409)
    assert error["message"] == 'The webhook is inactive: activate it (PATCH {"active": true}) before replaying.'
    assert local_client.patch(f"/webhooks/{hook}", json={"active": True}).status_code == 200

    response = _replay(local_client, hook, since=_since(start))
    assert response.status_code == 202
    body = response.get_json()
    assert body["object"] == "replay" and body["webhook_id"] == hook and body["status"] == ["failed"]
    assert body["count"] == 3 and body["has_more"] is False
    assert [d["event_id"] for d in body["deliveries"]] == [*failed, gone]  # oldest first
    assert {d["replayed_status"] for d in body["deliveries"]} == {"failed"}
    new_ids = [d["id"] for d in body["deliveries"]]
    assert set(_status_of(local_app, new_ids).values()) == {"queued"}  # enqueued at commit
    assert _replay(local_client, hook, since=_since(start)).get_json()["count"] == 0  # already replaying

    rest = _replay(local_client, hook, since=_since(start), status=["cancelled", "missed"]).get_json()
    assert [(d["event_id"], d["replayed_status"]) for d in rest["deliveries"]] == [
        (cancelled, "cancelled"),
        (missed, "missed"),
    ]
    count = len(plain_receiver.received)
    _process(local_app)
    got = plain_receiver.wait_for(count + 5, timeout=10)[count:]
    assert sorted(r.json["meta"]["event_id"] for r in got) == sorted([*failed, gone, cancelled, missed])
    assert all(r.headers["webhook-id"] == r.json["event"]["id"] == r.json["meta"]["event_id"] for r in got)
    assert set(_status_of(local_app, new_ids).values()) == {"succeeded"}
    assert (
        _replay(local_client, hook, since=_since(start), status=["failed", "cancelled", "missed"]).get_json()["count"]
        == 0
    )


def test_replay_since_limit_and_what_is_never_replayed(local_app, local_client, plain_receiver):
    hook = _create(local_client, plain_receiver.url + "/h")["id"]
    other = _create(local_client, plain_receiver.url + "/other")["id"]  # same brand, its own test event below
    plain_receiver.default = Reply(404)
    early = emit(local_app)
    _process(local_app)
    middle = ids.utcnow()
    late = [emit(local_app) for _ in range(3)]
    emit(local_app, "report_completed", data={"report_id": "r1", "report_name": "Weekly"})  # not subscribed
    emit(local_app, brand=new_brand())  # another brand
    _process(local_app)
    local_client.post(f"/webhooks/{other}/test")  # a test event of the same brand is never "missed"

    body = _replay(local_client, hook, since=_since(middle), limit=2).get_json()
    assert [d["event_id"] for d in body["deliveries"]] == late[:2] and body["has_more"] is True
    body = _replay(local_client, hook, since=_since(middle), limit=2).get_json()
    assert [d["event_id"] for d in body["deliveries"]] == late[2:] and body["has_more"] is False
    assert _replay(local_client, hook, since=_since(middle), status="missed").get_json()["count"] == 0
    # Redelivered successfully since: the latest delivery decides.
    plain_receiver.default = Reply(200)
    _process(local_app)
    body = _replay(local_client, hook, since="2000-01-01T00:00:00+02:00").get_json()
    assert [d["event_id"] for d in body["deliveries"]] == [early]
