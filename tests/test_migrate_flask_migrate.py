"""docs/upgrading.md followed with Flask-Migrate, as a host runs it: ``flask db init``, the docs'
``add_trakkr_versions`` and ``include_object``, a revision of the host's own on its own branch,
``flask db upgrade heads``, ``flask db check``, and the extension's branch down and up again.

Every command is the real ``flask db`` CLI in a subprocess, on SQLite, and on PostgreSQL with
``DATABASE_URL`` set (see conftest).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_trakkr_webhooks import generate_key, get_state, migrate
from flask_trakkr_webhooks.migrations import BRANCH, VERSION_TABLE

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "upgrading.md"


def fragment(name: str) -> str:
    """The code block marked ``<!-- fragment: NAME -->`` in docs/upgrading.md."""
    text = DOC.read_text()
    match = re.search(rf"<!-- fragment: {re.escape(name)} -->\n```python\n(.*?)```", text, re.S)
    assert match, f"docs/upgrading.md has no fragment {name}"
    return match.group(1)


HOST_APP = """\
import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from flask_trakkr_webhooks import TrakkrWebhooks

{versions}

{include_object}

db = SQLAlchemy()
migrate = Migrate()
webhooks = TrakkrWebhooks()


class Thing(db.Model):
    __tablename__ = "host_things"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(40), nullable=False)


def create_app():
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=os.environ["DATABASE_URL"],
        TRAKKR_WEBHOOKS_REDIS_URL=os.environ["REDIS_URL"],
        TRAKKR_WEBHOOKS_ENCRYPTION_KEY=os.environ["TRAKKR_WEBHOOKS_ENCRYPTION_KEY"],
    )
    db.init_app(app)
    webhooks.init_app(app, db)
    migrate.init_app(app, db, include_object=include_object)
    migrate.configure(add_trakkr_versions)
    return app
"""


#: Each host folder's environment (DATABASE_URL, REDIS_URL, key, FLASK_APP).
host_env: dict[Path, dict[str, str]] = {}


@pytest.fixture
def host(make_app: Callable[..., Flask], database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Path]:
    """A host app folder (``hostapp.py``) on an empty database; cleaned up after."""
    app = make_app()
    with app.app_context():
        get_state(app).db.drop_all()
    include_object = fragment("env.py").split("\n\n\ncontext.configure")[0]
    (tmp_path / "hostapp.py").write_text(
        HOST_APP.format(versions=fragment("version-locations.api"), include_object=include_object)
    )
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        TRAKKR_WEBHOOKS_ENCRYPTION_KEY=generate_key(),
        FLASK_APP="hostapp:create_app",
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]),
    )
    host_env[tmp_path] = env
    yield tmp_path
    host_env.pop(tmp_path, None)
    with app.app_context(), get_state(app).db.engine.begin() as connection:
        for table in ("alembic_version", VERSION_TABLE, "host_things"):
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    with app.app_context():
        get_state(app).db.drop_all()


def flask_db(folder: Path, *args: str) -> str:
    """Run ``flask db ARGS`` in the host's folder; its output (fails the test on a non-zero exit)."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "db", *args],
        cwd=folder,
        env=host_env[folder],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"flask db {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def tables(database_url: str) -> set[str]:
    """The tables in the database now."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return set(sa.inspect(connection).get_table_names())
    finally:
        engine.dispose()


def test_flask_migrate_host_upgrades_its_tables_and_the_extensions_together(host: Path, database_url: str) -> None:
    """The docs' steps: one ``upgrade heads`` makes both; autogenerate then finds nothing; the
    extension's branch goes down and up on its own, leaving the host's tables alone."""
    flask_db(host, "init")
    # Autogenerate compares against a database at every head, so the extension's branch first.
    flask_db(host, "upgrade", "heads")
    assert set(migrate.TABLES) <= tables(database_url)
    out = flask_db(
        host, "migrate", "--head", "base", "--branch-label", "host", "--version-path", "migrations/versions", "-m", "t"
    )
    revisions = list((host / "migrations" / "versions").glob("*.py"))
    assert len(revisions) == 1, out
    script = revisions[0].read_text()
    # include_object kept the extension's tables out of the host's own revision.
    assert "host_things" in script and "trakkr_webhook" not in script

    flask_db(host, "upgrade", "heads")
    assert {"host_things", "alembic_version", *migrate.TABLES} <= tables(database_url)
    heads = flask_db(host, "heads")
    assert "(head)" in heads and "tw000" in heads
    current = flask_db(host, "current")
    assert migrate.head() in current, current
    # The host's models and its revision agree, and the extension's tables stay out of its view.
    assert "No new upgrade operations detected" in flask_db(host, "check")

    flask_db(host, "downgrade", f"{BRANCH}@base")
    left = tables(database_url)
    assert "host_things" in left and not set(migrate.TABLES) & left
    flask_db(host, "upgrade", f"{BRANCH}@head")
    assert set(migrate.TABLES) <= tables(database_url)
    assert "No new upgrade operations detected" in flask_db(host, "check")

    # The host's next revision follows its own branch, in its own folder.
    column = "    name = db.Column(db.String(40), nullable=False)\n"
    app_file = host / "hostapp.py"
    app_file.write_text(app_file.read_text().replace(column, column + "    size = db.Column(db.Integer)\n"))
    flask_db(host, "migrate", "--head", "host@head", "-m", "size")
    assert len(list((host / "migrations" / "versions").glob("*.py"))) == 2
    flask_db(host, "upgrade", "heads")
    assert "No new upgrade operations detected" in flask_db(host, "check")
