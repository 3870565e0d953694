"""Claiming deliveries (``flask_trakkr_webhooks/claim.py``): one claim per delivery even under
racing jobs, deleted or inactive webhooks, early retry jobs, stale claims, giving up.

Real Redis, a real database and a real HTTP receiver; the job functions are called
directly (the worker process is covered by the end-to-end tests).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from e2e.helpers import delivery_ids as _ids
from e2e.helpers import delivery_rows as _deliveries
from e2e.helpers import emit, make_webhook, new_brand
from e2e.helpers import process as _run
from e2e.helpers import update_delivery as _update
from e2e.receiver import Reply
from flask_trakkr_webhooks import claim, crypto, get_state, ids, pacing


@pytest.fixture
def new_app_config():
    """What ``new_app`` adds to every app of this module: a short stuck-claim time."""
    return {"TRAKKR_WEBHOOKS_STUCK_AFTER": 5}


def _race(app, call, threads=4):
    """``call(state)`` on ``threads`` threads released at once, each in an app context; their results."""
    results: list = []
    barrier = threading.Barrier(threads)

    def run():
        with app.app_context():
            barrier.wait()
            results.append(call(get_state(app)))

    started = [threading.Thread(target=run) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(20)
    return results


@pytest.mark.parametrize(
    "take",
    [
        pytest.param(lambda state, ids_: claim.claim(state, ids_).items(), id="claim"),
        # prepare() claims and loads in one transaction (one statement on PostgreSQL).
        pytest.param(
            lambda state, ids_: [(w.delivery_id, w.attempt) for w in claim.prepare(state, ids_)], id="prepare"
        ),
    ],
)
def test_a_delivery_is_claimed_once_even_by_racing_jobs(new_app, receiver, take):
    app = new_app()
    for _ in range(5):
        make_webhook(app, receiver.url + "/hooks")
    emit(app)
    delivery_ids = _ids(app)
    taken = [pair for result in _race(app, lambda state: list(take(state, delivery_ids))) for pair in result]
    assert sorted(d for d, _ in taken) == sorted(delivery_ids)  # each exactly once
    assert all(attempt == 1 for _, attempt in taken)
    assert {d.status for d in _deliveries(app)} == {"sending"}


def test_prepare_gives_every_delivery_of_a_fan_out_its_own_event(new_app, receiver):
    # Two events to three webhooks: six deliveries in one batch, each event's payload read
    # once (on PostgreSQL it comes on one row of each event) and given to all its deliveries.
    app = new_app()
    hooks = [make_webhook(app, receiver.url + f"/hooks/{n}") for n in range(3)]
    first = emit(app, data={"n": 1})
    second = emit(app, data={"n": 2})
    with app.app_context():
        state = get_state(app)
        E = state.models.Event
        stored = dict(state.db.session.execute(sa.select(E.id, E.payload)).all())
        works = claim.prepare(state, _ids(app))
    assert len(works) == 6 and set(stored) == {first, second} and stored[first] != stored[second]
    for work in works:
        assert work.payload == stored[work.event_id], work
        assert work.event_type == "visibility_changed" and work.attempt == 1 and work.endpoint is not None
        assert work.payload["meta"]["event_id"] == work.event_id
    assert sorted(w.webhook_id for w in works) == sorted(hooks * 2)
    assert {(w.delivery_id, w.webhook_id) for w in works} == {(d.id, d.webhook_id) for d in _deliveries(app)}


def test_a_prepare_that_fails_after_claiming_leaves_nothing_claimed(new_app, receiver, monkeypatch):
    app = new_app()
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    delivery_ids = _ids(app)

    def broken(*args, **kwargs):
        raise RuntimeError("the load failed")

    monkeypatch.setattr(claim, "_works", broken)
    with app.app_context(), pytest.raises(RuntimeError, match="the load failed"):
        claim.prepare(get_state(app), delivery_ids)
    monkeypatch.undo()
    [row] = _deliveries(app)
    assert (row.status, row.attempt_count, row.claimed_at) == ("queued", 0, None)
    assert _run(app, delivery_ids)["succeeded"] == 1


def test_deleted_or_inactive_webhooks_end_quietly_as_cancelled(new_app, receiver):
    app = new_app()
    gone = make_webhook(app, receiver.url + "/gone")
    paused = make_webhook(app, receiver.url + "/paused")
    emit(app)
    with app.app_context():
        W = get_state(app).models.Webhook
        W.query.filter_by(id=gone).update({"deleted_at": ids.utcnow()})
        W.query.filter_by(id=paused).update({"active": False})
        app.db.session.commit()
    counts = _run(app, _ids(app))
    assert counts == {"claimed": 2, "skipped": 2}
    rows = _deliveries(app)
    assert {d.status for d in rows} == {"cancelled"}
    assert {d.attempt_count for d in rows} == {0} and all(not d.attempts for d in rows)
    assert sorted(d.last_error for d in rows) == ["the webhook is inactive", "the webhook was deleted"]
    assert receiver.received == []


def test_a_retry_job_that_comes_early_does_not_claim(new_app, receiver):
    app = new_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[30])
    make_webhook(app, receiver.url + "/hooks")
    receiver.script(Reply(500))
    emit(app)
    [delivery_id] = _ids(app)
    _run(app, [delivery_id])
    assert _run(app, [delivery_id]) == {"claimed": 0, "skipped": 0}
    assert len(receiver.received) == 1


def test_a_stale_claim_is_taken_over_and_the_lost_attempt_recorded(new_app, receiver):
    app = new_app(TRAKKR_WEBHOOKS_STUCK_AFTER=5)
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    [delivery_id] = _ids(app)
    _update(app, delivery_id, status="sending", attempt_count=1, claimed_at=ids.utcnow() - timedelta(seconds=2))
    assert _run(app, [delivery_id]) == {"claimed": 0, "skipped": 0}  # not stale yet
    _update(app, delivery_id, claimed_at=ids.utcnow() - timedelta(seconds=6))
    assert _run(app, [delivery_id])["succeeded"] == 1
    [row] = _deliveries(app)
    assert [(a.number, a.outcome, a.error_type) for a in row.attempts] == [
        (1, "retry", "WorkerLost"),
        (2, "succeeded", None),
    ]


def test_a_claim_past_the_last_attempt_gives_up(new_app, receiver):
    app = new_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[1, 2, 4])
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    [delivery_id] = _ids(app)
    _update(app, delivery_id, status="sending", attempt_count=4, claimed_at=ids.utcnow() - timedelta(seconds=60))
    _run(app, [delivery_id])
    [row] = _deliveries(app)
    assert row.status == "failed" and row.attempt_count == 4
    assert "gave up" in row.last_error
    assert [a.number for a in row.attempts] == [1, 2, 3, 4]
    assert receiver.received == []


def test_claiming_unknown_ids_claims_nothing(new_app, receiver):
    app = new_app()
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    with app.app_context():
        state = get_state(app)
        assert claim.claim(state, ["dlv_does_not_exist"]) == {}
        assert claim.claim(state, []) == {}
        statuses = state.db.session.execute(sa.select(state.models.Delivery.status)).scalars().all()
    assert statuses == ["queued"]


# -- one bad row never stalls a batch ----------------------------------------------------------------


def test_an_undecryptable_credential_fails_its_delivery_alone(new_app, receiver):
    # The worker's key is K2; one webhook's token was written under K1 (another app's key).
    k1, k2 = crypto.generate_key(), crypto.generate_key()
    app = new_app(TRAKKR_WEBHOOKS_ENCRYPTION_KEY=k2, TRAKKR_WEBHOOKS_RETRY_DELAYS=[1, 2, 4])
    with crypto.using_keys(k1):
        poison = make_webhook(app, receiver.url + "/poison")
    healthy = [make_webhook(app, receiver.url + "/hooks") for _ in range(4)]
    emit(app)
    counts = _run(app, _ids(app))
    assert counts == {"claimed": 5, "skipped": 0, "succeeded": 4, "failed": 1}
    rows = {d.webhook_id: d for d in _deliveries(app)}
    assert {rows[h].status for h in healthy} == {"succeeded"}
    bad = rows[poison]
    assert (bad.status, bad.attempt_count) == ("failed", 1)
    assert bad.last_error.startswith("DecryptionError: cannot decrypt the webhook's auth_token")
    [attempt] = bad.attempts
    assert (attempt.number, attempt.outcome, attempt.error_type) == (1, "failed", "DecryptionError")
    assert [r.path for r in receiver.received] == ["/hooks"] * 4  # nothing sent to the bad one


def test_an_undecryptable_secret_of_a_swept_batch_spares_other_brands(new_app, receiver):
    # The spread: another brand's deliveries swept into one batch with the bad row.
    k1 = crypto.generate_key()
    app = new_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[1, 2, 4])  # no key: a fernet value cannot be read
    with crypto.using_keys(k1):
        make_webhook(app, receiver.url + "/poison", auth_type="none", auth_token=None, signing_secret="whsec_k1")
    emit(app)
    other = new_brand()
    for _ in range(3):
        make_webhook(app, receiver.url + "/hooks", brand_id=other["id"])
    emit(app, brand=other)
    _run(app, _ids(app))
    statuses = sorted((d.status, d.last_error is not None) for d in _deliveries(app))
    assert statuses == [("failed", True), ("succeeded", False), ("succeeded", False), ("succeeded", False)]
    assert all(d.attempt_count == 1 for d in _deliveries(app))


def test_claim_load_never_raises_for_a_bad_row(new_app, receiver):
    app = new_app()
    with crypto.using_keys(crypto.generate_key()):
        make_webhook(app, receiver.url + "/poison")
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    with app.app_context():
        works = claim.prepare(get_state(app), _ids(app))
    problems = sorted((w.problem or ("", ""))[0] for w in works)
    assert problems == ["", "DecryptionError"]
    assert [w.endpoint is None for w in works if w.problem] == [True]


# -- pacing and per-endpoint concurrency -----------------------------------------------------


def _loaded(app, delivery_ids):
    with app.app_context():
        return {w.delivery_id: w for w in claim.prepare(get_state(app), delivery_ids)}


def test_load_carries_the_effective_rate_and_the_concurrency_unit(new_app, receiver):
    app = new_app(TRAKKR_WEBHOOKS_SHARED_HOSTS=["localhost"], TRAKKR_WEBHOOKS_RATE_LIMITS={"discord": ["2/s"]})
    make_webhook(app, receiver.url + "/slack/a", provider="slack")
    make_webhook(app, receiver.url + "/slack/b", provider="slack")
    make_webhook(app, receiver.url + "/discord", provider="discord")
    make_webhook(app, receiver.url + "/own", rate_limit=[{"requests": 7, "per_seconds": 3}])
    make_webhook(app, receiver.url + "/plain")
    make_webhook(app, receiver.url.replace("127.0.0.1", "localhost") + "/listed")
    emit(app)
    works = {w.endpoint.url.rsplit("/", 1)[-1]: w for w in _loaded(app, _ids(app)).values()}
    assert works["a"].rate_limit == works["b"].rate_limit == (pacing.Window(1, 1.0),)
    assert works["discord"].rate_limit == (pacing.Window(2, 1.0),)  # config beats the platform's
    assert works["own"].rate_limit == (pacing.Window(7, 3.0),)
    assert works["plain"].rate_limit == () and works["listed"].rate_limit == ()
    # A shared platform host: one concurrency unit per webhook URL; other hosts: per host.
    assert works["a"].per_endpoint and works["b"].per_endpoint and works["a"].host != works["b"].host
    assert not works["plain"].per_endpoint and works["plain"].host == works["own"].host
    assert works["listed"].per_endpoint  # TRAKKR_WEBHOOKS_SHARED_HOSTS
    assert works["a"].pace_key == pacing.key(works["a"].endpoint.url)


def test_deferrals_do_not_count_towards_the_attempts_a_claim_may_use(new_app, receiver):
    app = new_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[1, 2, 4])
    make_webhook(app, receiver.url + "/hooks")
    emit(app)
    [delivery_id] = _ids(app)
    # 6 attempts so far, 5 of them deferrals: the next claim is retry 1, not "gave up".
    _update(app, delivery_id, status="retrying", attempt_count=6, deferrals=5, deferred_seconds=12.0)
    [work] = _loaded(app, [delivery_id]).values()
    assert work.skip is None and work.attempt == 7 and work.retries_used == 2
    assert (work.deferrals, work.deferred_seconds) == (5, 12.0)
