"""emit(): validation, the payload, one SELECT + one bulk INSERT, after-commit enqueue."""

from __future__ import annotations

import logging
import math
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import redis
import sqlalchemy as sa
from rq import Queue

from e2e.helpers import BRAND, BRAND_ID, VISIBILITY, clear_queue, emit, make_webhook
from flask_trakkr_webhooks import dispatch, get_state, outbox

URL = "http://127.0.0.1:9/hooks"  # never contacted here: no worker runs


def _deep(depth: int) -> dict:
    """An object ``depth`` levels deep (itself level 1)."""
    value: dict = {"k": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def _queued_ids(app) -> list[str]:
    """Delivery ids in the app's RQ queue, in order."""
    state = get_state(app)
    queue = Queue(state.settings.queue, connection=redis.Redis.from_url(state.settings.redis_url))
    return [i for job in queue.jobs for i in job.args[0]]


def _recorded(app) -> dict:
    state = get_state(app)
    return redis.Redis.from_url(state.settings.redis_url).hgetall(state.jobs_key)


def _rows(app, model: str) -> list:
    with app.app_context():
        state = get_state(app)
        return state.db.session.execute(sa.select(getattr(state.models, model))).scalars().all()


@pytest.fixture
def app(make_app):
    app = make_app(TRAKKR_WEBHOOKS_BATCH_SIZE=10)
    yield app
    clear_queue(app)


def test_emit_writes_the_event_and_one_delivery_per_matching_webhook(app):
    matching = [make_webhook(app, URL, events=["visibility_changed", "citation_lost"]) for _ in range(3)]
    make_webhook(app, URL, events=["report_completed"])  # not subscribed
    make_webhook(app, URL, active=False)  # inactive
    make_webhook(app, URL, deleted_at=datetime.now(timezone.utc))  # deleted
    make_webhook(app, URL, brand_id=str(uuid.uuid4()))  # another brand

    event_id = emit(app)

    assert event_id.startswith("evt_")
    [event] = _rows(app, "Event")
    assert (event.id, event.type, event.brand_id) == (event_id, "visibility_changed", BRAND_ID)
    payload = event.payload
    assert set(payload) == {"event", "brand", "workflow", "summary", "meta"}
    assert payload["event"]["id"] == payload["meta"]["event_id"] == payload["meta"]["idempotency_key"] == event_id
    assert payload["event"]["type"] == "visibility_changed"
    assert payload["event"]["timestamp"].endswith("Z")
    assert payload["event"]["data"] == VISIBILITY
    assert payload["brand"] == BRAND
    assert payload["workflow"] is None
    assert payload["summary"] == "Acme's visibility rose 40.2% (41.0 \u2192 57.5)"
    assert payload["meta"]["source"] == "trakkr" and payload["meta"]["version"] == "1.0"
    assert "test" not in payload["meta"]
    rows = _rows(app, "Delivery")
    assert sorted(d.webhook_id for d in rows) == sorted(matching)
    assert {d.status for d in rows} == {"queued"} and {d.event_id for d in rows} == {event_id}
    assert sorted(_queued_ids(app)) == sorted(d.id for d in rows)


def test_one_select_one_bulk_insert_and_one_redis_round_trip_for_many_webhooks(app, monkeypatch):
    hooks = 25
    for _ in range(hooks):
        make_webhook(app, URL)
    state = get_state(app)
    # RQ asks the server's version once per connection: learn it before counting.
    state.queue().get_redis_server_version()

    statements: list[tuple[str, bool]] = []
    round_trips: list[str] = []

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        statements.append((" ".join(statement.split())[:60], executemany))

    real_execute = redis.client.Pipeline.execute
    real_command = redis.Redis.execute_command

    def pipeline_execute(self, *args, **kwargs):
        round_trips.append(f"pipeline of {len(self.command_stack)} commands")
        return real_execute(self, *args, **kwargs)

    def command(self, *args, **kwargs):
        if not isinstance(self, redis.client.Pipeline):
            round_trips.append(str(args[0]))
        return real_command(self, *args, **kwargs)

    with app.app_context():
        engine = state.db.engine
        sa.event.listen(engine, "before_cursor_execute", on_execute)
        monkeypatch.setattr(redis.client.Pipeline, "execute", pipeline_execute)
        monkeypatch.setattr(redis.Redis, "execute_command", command)
        try:
            app.webhooks.emit("visibility_changed", brand=BRAND, data=VISIBILITY)
            in_emit = list(statements)
            statements.clear()
            state.db.session.commit()
        finally:
            sa.event.remove(engine, "before_cursor_execute", on_execute)

    selects = [s for s, _ in in_emit if s.startswith("SELECT")]
    inserts = [(s, many) for s, many in in_emit if s.startswith("INSERT")]
    assert len(selects) == 1 and "trakkr_webhooks" in selects[0]
    assert len(inserts) == 2, inserts
    assert "trakkr_webhook_events" in inserts[0][0]
    assert "trakkr_webhook_deliveries" in inserts[1][0]
    assert len(in_emit) == 3, in_emit
    assert len(round_trips) == 1 and round_trips[0].startswith("pipeline of "), round_trips
    assert len(_queued_ids(app)) == hooks
    assert len(_recorded(app)) == hooks
    # After the commit: one UPDATE marking them queued, nothing per delivery.
    assert [s.split()[0] for s, _ in statements if not s.startswith(("BEGIN", "COMMIT"))].count("UPDATE") == 1


def test_jobs_carry_batches_of_batch_size(app):
    for _ in range(23):
        make_webhook(app, URL)
    emit(app)
    state = get_state(app)
    queue = Queue(state.settings.queue, connection=redis.Redis.from_url(state.settings.redis_url))
    assert [len(job.args[0]) for job in queue.jobs] == [10, 10, 3]
    assert {job.func_name for job in queue.jobs} == {dispatch.JOB_FUNC}


def test_rollback_writes_and_enqueues_nothing(app):
    make_webhook(app, URL)
    emit(app, commit=False)
    assert _rows(app, "Event") == [] and _rows(app, "Delivery") == []
    assert _queued_ids(app) == [] and _recorded(app) == {}


def test_nothing_is_enqueued_before_the_commit(app):
    make_webhook(app, URL)
    with app.app_context():
        app.webhooks.emit("visibility_changed", brand=BRAND, data=VISIBILITY)
        assert _queued_ids(app) == []
        app.db.session.commit()
        assert len(_queued_ids(app)) == 1


def test_savepoints_released_roll_up_and_rolled_back_ones_are_dropped(app):
    make_webhook(app, URL)
    with app.app_context():
        session = app.db.session
        kept = app.webhooks.emit("visibility_changed", brand=BRAND, data=VISIBILITY)
        with session.begin_nested():
            released = app.webhooks.emit("visibility_changed", brand=BRAND, data=VISIBILITY)
        nested = session.begin_nested()
        app.webhooks.emit("visibility_changed", brand=BRAND, data=VISIBILITY)
        nested.rollback()
        assert _queued_ids(app) == []  # a released savepoint is not a commit
        session.commit()
    events = {d.event_id for d in _rows(app, "Delivery")}
    assert events == {kept, released}
    assert len(_queued_ids(app)) == 2


def test_a_released_savepoint_inside_a_rolled_back_transaction_sends_nothing(app, is_postgres):
    make_webhook(app, URL)
    with app.app_context():
        session = app.db.session
        with session.begin_nested():
            app.webhooks.emit("visibility_changed", brand=BRAND, data=VISIBILITY)
        session.rollback()
        session.commit()
    assert _queued_ids(app) == []
    if is_postgres:
        # (pysqlite without SQLAlchemy's documented SAVEPOINT recipe commits at RELEASE;
        # rows it kept are enqueued by the sweep, like any committed pending delivery.)
        assert _rows(app, "Delivery") == []


def test_redis_down_at_commit_keeps_the_rows_pending_and_never_raises(make_app, caplog):
    app = make_app(TRAKKR_WEBHOOKS_REDIS_URL="redis://127.0.0.1:1/0")
    make_webhook(app, URL)
    with caplog.at_level(logging.WARNING, logger="flask_trakkr_webhooks"):
        event_id = emit(app)  # commits
    [delivery] = _rows(app, "Delivery")
    assert delivery.event_id == event_id and delivery.status == "pending"
    assert any("stay pending" in r.getMessage() for r in caplog.records)
    # Within the back-off, later commits do not even try (no connect timeout per commit).
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flask_trakkr_webhooks"):
        emit(app)
    assert any("recently unreachable" in r.getMessage() for r in caplog.records)


def test_no_matching_webhook_still_records_the_event(app):
    event_id = emit(app)
    assert [e.id for e in _rows(app, "Event")] == [event_id]
    assert _rows(app, "Delivery") == [] and _queued_ids(app) == []


def test_host_data_types_become_json(app):
    make_webhook(app, URL, events=["report_completed"])
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    ident = uuid.uuid4()
    emit(
        app,
        "report_completed",
        data={
            "at": when,
            "day": when.date(),
            "id": ident,
            "score": Decimal("1.5"),
            "tags": ("a", "b"),
            "nested": {"set": {2, 1}},
        },
        workflow={"id": ident, "name": "Weekly"},
        summary="Custom summary",
    )
    payload = _rows(app, "Event")[0].payload
    assert payload["event"]["data"] == {
        "at": "2025-01-02T03:04:05.000Z",
        "day": "2025-01-02",
        "id": str(ident),
        "score": 1.5,
        "tags": ["a", "b"],
        "nested": {"set": [1, 2]},
    }
    assert payload["workflow"] == {"id": str(ident), "name": "Weekly"}
    assert payload["summary"] == "Custom summary"


def test_registered_event_types_are_accepted_and_summarised(app):
    app.webhooks.register_event_type("mention.spiked", "Mentions spiked")
    make_webhook(app, URL, events=["mention.spiked"])
    emit(app, "mention.spiked", data={"count": 12})
    assert _rows(app, "Event")[0].payload["summary"] == "Acme: Mentions spiked"
    assert len(_rows(app, "Delivery")) == 1


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (
            dict(event_type="visibility.exploded"),
            ValueError,
            r"unknown event type 'visibility.exploded'; known event types: citation_gained, citation_lost, "
            r"competitor_added, report_completed, visibility_changed",
        ),
        (dict(event_type=42), TypeError, "event_type must be a string"),
        (dict(brand="acme"), TypeError, "brand must be a mapping"),
        (dict(brand={"name": "Acme"}), ValueError, r"brand\['id'\] is required"),
        (dict(brand={"id": ""}), ValueError, r"brand\['id'\] is required"),
        (dict(brand={"id": "x" * 37}), ValueError, r"brand\['id'\] must be a UUID .*got 'xxxx"),
        # The README's friction points: an int id said "is required"; "acme" was taken and never matched.
        (dict(brand={"id": 42}), ValueError, r"brand\['id'\] must be a UUID .*got int 42$"),
        (dict(brand={"id": "acme"}), ValueError, r"brand\['id'\] must be a UUID \(32 hex digits.*got 'acme'$"),
        (dict(brand={"id": BRAND_ID, "name": 7}), TypeError, r"brand\['name'\] must be a string"),
        (dict(data=[1, 2]), TypeError, "data must be a mapping"),
        (dict(data={"when": object()}), TypeError, "data.when is a object, which cannot be sent as JSON"),
        (dict(data={"x": {1: "a"}}), TypeError, "data.x has a non-string key"),
        (dict(data={"score": math.nan}), ValueError, "data.score is nan, which is not valid JSON"),
        (dict(workflow="wf"), TypeError, "workflow must be a mapping or None"),
        (dict(summary=3), TypeError, "summary must be a string or None"),
        (
            dict(data={"blob": "x" * 300_000}),
            ValueError,
            r"over the limit of 262144 bytes \(TRAKKR_WEBHOOKS_MAX_PAYLOAD_BYTES\)",
        ),
        # Issue 19: about 1,000 levels raised RecursionError; 900 were accepted, then the
        # generic provider failed the delivery.
        (dict(data=_deep(1000)), ValueError, r"nests deeper than 32 levels.*TRAKKR_WEBHOOKS_MAX_PAYLOAD_DEPTH"),
        (dict(data=_deep(900)), ValueError, "nests deeper than 32 levels"),
        (dict(data=_deep(33)), ValueError, "nests deeper than 32 levels"),
        (dict(workflow=_deep(40)), ValueError, r"workflow\.k\.k.* nests deeper than 32 levels"),
        (dict(data={"n": 10**5000}), ValueError, r"data\.n is an integer of more than 2000 bits"),
        (dict(data={"s": "\ud83d"}), ValueError, r"data\.s holds a lone surrogate"),
        (dict(summary="\udfff"), ValueError, "summary holds a lone surrogate"),
    ],
)
def test_bad_input_raises_a_clear_error_and_writes_nothing(app, kwargs, error, match):
    make_webhook(app, URL)
    call = dict(event_type="visibility_changed", brand=BRAND, data=VISIBILITY)
    call.update(kwargs)
    with app.app_context():
        with pytest.raises(error, match=match):
            app.webhooks.emit(call.pop("event_type"), **call)
        app.db.session.commit()
    assert _rows(app, "Event") == [] and _rows(app, "Delivery") == []
    assert _queued_ids(app) == []


def test_payload_size_limit_is_configurable(make_app):
    app = make_app(TRAKKR_WEBHOOKS_MAX_PAYLOAD_BYTES=2048)
    with app.app_context(), pytest.raises(ValueError, match="over the limit of 2048 bytes"):
        app.webhooks.emit("visibility_changed", brand=BRAND, data={"blob": "x" * 3000})
    make_webhook(app, URL)
    emit(app)  # a normal event stays well under it
    assert len(_queued_ids(app)) == 1
    clear_queue(app)


@pytest.mark.parametrize("spelling", [str.upper, lambda s: s.replace("-", ""), lambda s: s.upper().replace("-", "")])
def test_any_spelling_of_the_brand_uuid_reaches_its_webhooks(app, spelling):
    hook = make_webhook(app, URL)
    event_id = emit(app, brand={**BRAND, "id": spelling(BRAND_ID)})
    [event] = _rows(app, "Event")
    assert event.id == event_id and event.brand_id == BRAND_ID  # stored canonical, as the API stores it
    assert event.payload["brand"]["id"] == spelling(BRAND_ID)  # the host's value is what it sent
    assert [d.webhook_id for d in _rows(app, "Delivery")] == [hook]


def test_payload_depth_limit_is_configurable(make_app):
    app = make_app(TRAKKR_WEBHOOKS_MAX_PAYLOAD_DEPTH=100)
    make_webhook(app, URL)
    emit(app, data=_deep(100))  # the deepest the setting allows: stored and enqueued
    assert len(_queued_ids(app)) == 1
    with app.app_context(), pytest.raises(ValueError, match="deeper than 100 levels"):
        app.webhooks.emit("visibility_changed", brand=BRAND, data=_deep(101))
    clear_queue(app)
    shallow = make_app(TRAKKR_WEBHOOKS_MAX_PAYLOAD_DEPTH=2)
    with shallow.app_context(), pytest.raises(ValueError, match="deeper than 2 levels"):
        shallow.webhooks.emit("visibility_changed", brand=BRAND, data={"a": {"b": {}}})


def test_emit_and_commit_check_out_one_pooled_connection(app):
    """Marking the deliveries queued reuses the committing connection: one checkout per emit, not two."""
    for _ in range(3):
        make_webhook(app, URL)
    with app.app_context():
        engine = get_state(app).db.engine
    checkouts: list[object] = []
    listener = lambda *args: checkouts.append(args[0])  # noqa: E731 - one line, removed below
    sa.event.listen(engine, "checkout", listener)
    try:
        emit(app)
    finally:
        sa.event.remove(engine, "checkout", listener)
    assert len(checkouts) == 1
    assert {d.status for d in _rows(app, "Delivery")} == {"queued"}  # still marked
    assert len(_queued_ids(app)) == 3


def test_a_session_inside_an_outer_transaction_still_marks_through_its_own_connection(app, monkeypatch):
    """When the committed connection is still in a transaction (a joined session), the old path is used."""
    make_webhook(app, URL)
    with app.app_context():
        state = get_state(app)
        ids = ["dlv_x"]
        conn = state.db.engine.connect()
        try:
            conn.begin()
            calls: list[list[str]] = []
            monkeypatch.setattr(dispatch, "mark_queued", lambda st, got, **kw: calls.append(list(got)))
            assert outbox.enqueue_committed(state, ids, connection=conn) is True
            assert calls == [ids]
        finally:
            conn.close()
    clear_queue(app)
