"""The partitioning recipe of docs/capacity.md, applied as a reader would (``psql -f``) to a
PostgreSQL database holding months of history; then the whole delivery path runs on it: emit,
a real worker, a retry, a verified receipt, the API's delivery log, and a prune."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess

import pytest
import sqlalchemy as sa
from flask import Flask

from e2e.conftest import ROOT, wait_until
from e2e.helpers import deliveries, emit, make_webhook
from e2e.receiver import Reply
from flask_trakkr_webhooks import get_state, retention
from flask_trakkr_webhooks.testing import seed_history

pytestmark = pytest.mark.e2e

RECIPE = ROOT / "docs" / "examples" / "partition.sql"


def _psql_url(sqlalchemy_url: str) -> str:
    """The libpq spelling of a SQLAlchemy URL (``postgresql+psycopg://`` → ``postgresql://``)."""
    return sa.engine.make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _partitions(connection: sa.Connection, parent: str) -> dict[str, int]:
    """Rows per partition of ``parent``."""
    rows = connection.execute(
        sa.text(
            f"SELECT tableoid::regclass::text AS part, count(*) FROM {parent} GROUP BY 1"  # our table names
        )
    )
    return {str(part): int(count) for part, count in rows}


def _drop_functions(app: Flask) -> None:
    """The recipe's functions outlive the tables the app's teardown drops."""
    with app.app_context(), get_state(app).db.engine.begin() as connection:
        connection.execute(sa.text("DROP FUNCTION IF EXISTS trakkr_webhooks_add_partitions(integer)"))
        connection.execute(sa.text("DROP FUNCTION IF EXISTS trakkr_webhooks_add_partitions(date, integer)"))


def test_the_partitioning_recipe_keeps_the_rows_and_the_delivery_path_works_on_it(
    postgres_url: str | None, e2e_app, receiver, start_worker, request: pytest.FixtureRequest
):
    if postgres_url is None:
        pytest.skip("the recipe is for PostgreSQL: set DATABASE_URL=postgresql://127.0.0.1/test")
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql (the PostgreSQL client the recipe is run with) is not installed")
    # The session's database: the app's teardown drops the tables (partitions with their parents).
    app = e2e_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[1])
    request.addfinalizer(lambda: _drop_functions(app))
    state = get_state(app)
    hook = make_webhook(app, receiver.url + "/hooks")
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with app.app_context():
        # Four months of history: 300 finished deliveries a month, 60 and 90 days old ones among them.
        for days in (100, 70, 40, 10):
            seed_history(state, hook, 300, now - dt.timedelta(days=days), spread=3600)
        state.db.engine.dispose()

    result = subprocess.run(
        [psql, _psql_url(postgres_url), "-v", "ON_ERROR_STOP=1", "--single-transaction", "-q", "-f", str(RECIPE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr

    with app.app_context(), state.db.engine.connect() as connection:
        kinds = dict(
            connection.execute(
                sa.text(
                    "SELECT relname, relkind FROM pg_class WHERE relname IN "
                    "('trakkr_webhook_deliveries', 'trakkr_webhook_attempts')"
                )
            ).all()
        )
        assert kinds == {"trakkr_webhook_deliveries": "p", "trakkr_webhook_attempts": "p"}
        per_month = _partitions(connection, "trakkr_webhook_deliveries")
        assert sum(per_month.values()) == 1200  # every row copied
        assert len(per_month) >= 4 and all(part.startswith("trakkr_webhook_deliveries_y") for part in per_month)
        assert sum(_partitions(connection, "trakkr_webhook_attempts").values()) == 1200
        # Each new month already has its partition (three ahead), so nothing lands in DEFAULT.
        ahead = connection.scalar(sa.text("SELECT trakkr_webhooks_add_partitions(3)"))
        assert ahead == 0

    # Retention on partitioned tables (before a worker starts and prunes on its own): the
    # default 30 days removes the 100, 70 and 40 days old rows, in batches across partitions.
    with app.app_context():
        counts = retention.prune(state, retention.Cutoffs.of(state), batch_size=250)
    assert (counts.deliveries, counts.attempts, counts.events) == (900, 900, 900)

    # The delivery path on the partitioned tables: one 500, then a retry that succeeds.
    receiver.script(Reply(500))
    start_worker(app)
    event_id = emit(app)
    got = receiver.wait_for(2, timeout=30)
    assert [r.signature_ok for r in got] == [True, True]
    delivery = wait_until(
        lambda: [d for d in deliveries(app, event_id) if d["status"] == "succeeded"], 30, "the retried delivery"
    )[0]
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 200]
    month = now.strftime("_y%Ym%m")
    with app.app_context(), state.db.engine.connect() as connection:
        assert _partitions(connection, "trakkr_webhook_deliveries").get(f"trakkr_webhook_deliveries{month}", 0) >= 1
        assert _partitions(connection, "trakkr_webhook_attempts").get(f"trakkr_webhook_attempts{month}", 0) >= 2
        assert connection.scalar(sa.text("SELECT count(*) FROM trakkr_webhook_deliveries_default")) == 0

    # The API's delivery log reads across partitions, newest first.
    client = app.test_client()
    page = client.get(f"/webhooks/{hook}/deliveries?limit=5").get_json()
    assert page["data"][0]["id"] == delivery["id"]

    with app.app_context(), state.db.engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT count(*) FROM trakkr_webhook_deliveries")) == 301
