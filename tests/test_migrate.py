"""The extension's Alembic branch: round trips with data, models and migrations in step, ``flask webhooks db``.

Runs on SQLite, and on PostgreSQL with ``DATABASE_URL`` set (see conftest).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from flask import Flask

from flask_trakkr_webhooks import get_state, migrate
from flask_trakkr_webhooks.migrations import BRANCH, VERSION_TABLE, VERSIONS

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


@pytest.fixture
def empty_app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    """An app whose database holds none of the extension's tables (nor a version table)."""
    app = make_app()
    with app.app_context():
        get_state(app).db.drop_all()
    yield app
    with app.app_context():
        with get_state(app).db.engine.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
            connection.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
            connection.execute(sa.text("DROP TABLE IF EXISTS host_things"))


def cli(app: Flask, *args: str) -> tuple[int, str]:
    """Run ``flask webhooks db ARGS``; ``(exit code, output)``."""
    result = app.test_cli_runner().invoke(args=["webhooks", "db", *args])
    return result.exit_code, result.output


def differences(app: Flask) -> list[Any]:
    """What Alembic's autogenerate finds between the models and the database's tables."""
    state = get_state(app)
    with app.app_context(), state.db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "include_name": lambda name, kind, parent: kind != "table" or name in migrate.TABLES,
            },
        )
        return list(compare_metadata(context, state.db.metadata))


def fill_revision_1(app: Flask) -> None:
    """Rows in every table as the schema of revision 1 has them (reflected: no model is used)."""
    state = get_state(app)
    with app.app_context(), state.db.engine.begin() as connection:
        meta = sa.MetaData()
        meta.reflect(connection, only=migrate.TABLES)
        hooks, events, deliveries, attempts = (meta.tables[t] for t in migrate.TABLES)
        common = dict(provider="webhook", active=True, auth_type="none", consecutive_failures=0)
        insert(
            connection,
            hooks,
            [
                dict(
                    id="wh_1",
                    brand_id="b1",
                    url="https://a.example/h",
                    events=["visibility_changed"],
                    headers={"X-A": "1"},
                    template=None,
                    signing_secret="whsec_plain_but_long_enough",
                    created_at=T0,
                    updated_at=T0,
                    **common,
                ),
                dict(
                    id="wh_2",
                    brand_id="b2",
                    url="https://b.example/h",
                    events=[],
                    headers={},
                    template={"text": "{{ summary }}"},
                    description="two",
                    created_at=T0,
                    updated_at=T0,
                    deleted_at=T0,
                    **common,
                ),
            ],
        )
        connection.execute(
            events.insert(),
            [
                dict(
                    id=f"evt_{i}",
                    type="visibility_changed",
                    brand_id="b1",
                    payload={"n": i, "s": "é"},
                    created_at=T0 + dt.timedelta(seconds=i),
                )
                for i in range(3)
            ],
        )
        connection.execute(
            deliveries.insert(),
            [
                dict(
                    id=f"dlv_{i}",
                    event_id=f"evt_{i % 3}",
                    webhook_id="wh_1",
                    status=status,
                    is_test=i == 3,
                    attempt_count=i,
                    last_status_code=500 if i else None,
                    last_error="boom" if i else None,
                    created_at=T0,
                    updated_at=T0,
                    completed_at=T0 if status == "succeeded" else None,
                )
                for i, status in enumerate(("succeeded", "retrying", "pending", "failed"))
            ],
        )
        connection.execute(
            attempts.insert(),
            [
                dict(
                    id=f"att_{i}",
                    delivery_id=f"dlv_{i % 4}",
                    number=i // 4 + 1,
                    started_at=T0,
                    duration_ms=1.5 * i,
                    status_code=200,
                    outcome="succeeded",
                    response_headers={"a": "b"},
                    response_body="ok " * i,
                )
                for i in range(5)
            ],
        )


def insert(connection: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows one by one (they name different columns)."""
    for row in rows:
        connection.execute(table.insert(), row)


def snapshot(app: Flask, columns_of: dict[str, list[str]] | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (only ``columns_of[table]`` when given), ordered by id."""
    state = get_state(app)
    with app.app_context(), state.db.engine.connect() as connection:
        meta = sa.MetaData()
        meta.reflect(connection, only=migrate.TABLES)
        out = {}
        for name in migrate.TABLES:
            table = meta.tables[name]
            names = columns_of[name] if columns_of else [c.name for c in table.columns]
            rows = connection.execute(sa.select(*(table.c[n] for n in names)).order_by(table.c.id))
            out[name] = [tuple(r) for r in rows]
        return out


def columns(app: Flask) -> dict[str, list[str]]:
    """Column names of every table, as the database has them."""
    state = get_state(app)
    with app.app_context(), state.db.engine.connect() as connection:
        inspector = sa.inspect(connection)
        return {t: [c["name"] for c in inspector.get_columns(t)] for t in migrate.TABLES}


def test_migrate_fresh_database_to_head_matches_the_models(empty_app: Flask) -> None:
    code, output = cli(empty_app, "upgrade")
    assert code == 0, output
    assert output.strip() == f"webhook tables: none -> {migrate.head()}"
    assert differences(empty_app) == []
    assert cli(empty_app, "current") == (0, f"current: {migrate.head()}; head: {migrate.head()}\n")


def test_migrate_a_model_change_without_a_revision_is_found(empty_app: Flask) -> None:
    assert cli(empty_app, "upgrade")[0] == 0
    table = get_state(empty_app).db.metadata.tables["trakkr_webhook_deliveries"]
    extra = sa.Column("not_migrated", sa.Integer, nullable=True)
    table.append_column(extra)
    try:
        found = differences(empty_app)
    finally:
        table._columns.remove(extra)  # the metadata is shared by the models of this db only
    assert [(d[0], d[2], d[3].name) for d in found] == [("add_column", "trakkr_webhook_deliveries", "not_migrated")]


def test_migrate_round_trip_with_data_loses_nothing(empty_app: Flask) -> None:
    assert cli(empty_app, "upgrade", "tw0001_initial") == (0, "webhook tables: none -> tw0001_initial\n")
    fill_revision_1(empty_app)
    at_1 = columns(empty_app)
    before = snapshot(empty_app)

    code, output = cli(empty_app, "upgrade")
    assert code == 0, output
    assert output == f"webhook tables: tw0001_initial -> {migrate.head()}\n"
    assert snapshot(empty_app, at_1) == before
    assert differences(empty_app) == []
    state = get_state(empty_app)
    with empty_app.app_context():
        # New columns: their server defaults on the old rows; the models read and write them.
        rows = {d.id: (d.deferrals, d.deferred_seconds) for d in state.models.Delivery.query.all()}
        assert rows == {f"dlv_{i}": (0, 0.0) for i in range(4)}
        hook = state.db.session.get(state.models.Webhook, "wh_1")
        assert hook.rate_limit is None
        hook.rate_limit = [{"requests": 1, "per_seconds": 1}]
        state.db.session.commit()  # (updated_at moves on: the snapshot is taken again)
        state.db.session.remove()
    before = snapshot(empty_app, at_1)

    code, output = cli(empty_app, "downgrade", "tw0001_initial")
    assert code == 0, output
    assert output == f"webhook tables: {migrate.head()} -> tw0001_initial\n"
    assert columns(empty_app) == at_1
    assert snapshot(empty_app) == before

    assert cli(empty_app, "upgrade")[0] == 0
    assert snapshot(empty_app, at_1) == before
    assert cli(empty_app, "downgrade", "base") == (
        0,
        "webhook tables: tw0001_initial -> none\n".replace("tw0001_initial", migrate.head()),
    )
    with empty_app.app_context(), get_state(empty_app).db.engine.connect() as connection:
        assert set(sa.inspect(connection).get_table_names()) & set(migrate.TABLES) == set()


def test_migrate_tables_from_create_all_are_adopted(empty_app: Flask) -> None:
    with empty_app.app_context():
        get_state(empty_app).db.create_all()
    assert cli(empty_app, "upgrade") == (
        0,
        f"existing tables recognised as revision {migrate.head()}\n"
        f"webhook tables: {migrate.head()} -> {migrate.head()}\n",
    )
    assert differences(empty_app) == []


def test_migrate_revision_1_tables_without_a_version_are_adopted_and_upgraded(empty_app: Flask) -> None:
    assert cli(empty_app, "upgrade", "tw0001_initial")[0] == 0
    fill_revision_1(empty_app)
    before = snapshot(empty_app)
    with empty_app.app_context(), get_state(empty_app).db.engine.begin() as connection:
        connection.execute(sa.text(f"DROP TABLE {VERSION_TABLE}"))  # as db.create_all() left them
    assert cli(empty_app, "upgrade") == (
        0,
        f"existing tables recognised as revision tw0001_initial\nwebhook tables: tw0001_initial -> {migrate.head()}\n",
    )
    assert snapshot(empty_app, {t: list(cols) for t, cols in _rev1_columns().items()}) == before


def _rev1_columns() -> dict[str, list[str]]:
    return {
        "trakkr_webhooks": [c for c in _model_columns("trakkr_webhooks") if c != "rate_limit"],
        "trakkr_webhook_events": _model_columns("trakkr_webhook_events"),
        "trakkr_webhook_deliveries": [
            c for c in _model_columns("trakkr_webhook_deliveries") if c not in ("deferrals", "deferred_seconds")
        ],
        "trakkr_webhook_attempts": _model_columns("trakkr_webhook_attempts"),
    }


def _model_columns(table: str) -> list[str]:
    script = (VERSIONS / "tw0001_initial.py").read_text()
    start = script.index(f'"{table}",\n')
    end = script.index("\n    )", start)
    return [line.split('"')[1] for line in script[start:end].splitlines() if "sa.Column(" in line]


def test_migrate_unknown_revision_fails_naming_it(empty_app: Flask) -> None:
    code, output = cli(empty_app, "upgrade", "tw9999_nope")
    assert code == 1
    assert output == "Error: could not upgrade: CommandError: Can't locate revision identified by 'tw9999_nope'\n"
    code, output = cli(empty_app, "downgrade", "tw9999_nope")
    assert code == 1
    assert output == "Error: could not downgrade: CommandError: Can't locate revision identified by 'tw9999_nope'\n"


def test_migrate_half_the_tables_is_refused(empty_app: Flask) -> None:
    with empty_app.app_context():
        state = get_state(empty_app)
        state.models.Event.__table__.create(state.db.engine)
    code, output = cli(empty_app, "upgrade")
    assert code == 1
    assert output.startswith("Error: could not upgrade: RuntimeError: some webhook tables exist, others do not (")
    with empty_app.app_context():
        state.models.Event.__table__.drop(state.db.engine)


def _host_alembic(tmp_path: Path) -> tuple[Path, Config]:
    """A host's own Alembic scripts folder (as Flask-Migrate sets it up, no revisions yet) and a
    config whose ``version_locations`` hold its versions and our branch's."""
    scripts = tmp_path / "migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(
        "from alembic import context\n"
        "config = context.config\n"
        "context.configure(connection=config.attributes['connection'], render_as_batch=True)\n"
        "with context.begin_transaction():\n"
        "    context.run_migrations()\n"
    )
    config = Config()
    config.set_main_option("script_location", str(scripts))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join([str(scripts / "versions"), str(VERSIONS)]))
    return scripts, config


def test_migrate_host_alembic_with_the_branch_in_version_locations(empty_app: Flask, tmp_path: Path) -> None:
    """A host's own Alembic (as Flask-Migrate sets it up): its revisions and ours, one ``upgrade heads``."""
    scripts, config = _host_alembic(tmp_path)
    (scripts / "versions" / "host0001.py").write_text(
        "import sqlalchemy as sa\nfrom alembic import op\n"
        "revision = 'host0001'\ndown_revision = None\nbranch_labels = ('host',)\ndepends_on = None\n"
        "def upgrade():\n    op.create_table('host_things', sa.Column('id', sa.Integer, primary_key=True))\n"
        "def downgrade():\n    op.drop_table('host_things')\n"
    )
    with empty_app.app_context(), get_state(empty_app).db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")
        heads = set(MigrationContext.configure(connection).get_current_heads())
        tables = set(sa.inspect(connection).get_table_names())
    assert heads == {"host0001", migrate.head()}
    assert {"host_things", *migrate.TABLES} <= tables
    assert differences(empty_app) == []
    with empty_app.app_context(), get_state(empty_app).db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, f"{BRANCH}@base")
        assert set(MigrationContext.configure(connection).get_current_heads()) == {"host0001"}
        assert "trakkr_webhooks" not in sa.inspect(connection).get_table_names()


def test_migrate_host_whose_revisions_made_the_tables_stamps_then_upgrades(empty_app: Flask, tmp_path: Path) -> None:
    """docs/upgrading.md: tables a host's own revisions created (as of tw0002) are stamped, then upgraded."""
    _, config = _host_alembic(tmp_path)
    with empty_app.app_context(), get_state(empty_app).db.engine.begin() as connection:
        # The host's tables as of tw0002, made outside the branch (here: by the branch's own scripts,
        # then the record removed, as if the host's revisions had made them).
        own = migrate.alembic_config(connection)
        command.upgrade(own, "tw0002_rate_limits")
        connection.execute(sa.text(f"DROP TABLE {VERSION_TABLE}"))
        config.attributes["connection"] = connection
        command.stamp(config, "tw0002_rate_limits")
        command.upgrade(config, "heads")
        assert MigrationContext.configure(connection).get_current_heads() == (migrate.head(),)
    assert differences(empty_app) == []
