"""The ``flask webhooks`` command group (``flask_trakkr_webhooks/cli.py``) through Flask's CLI
runner: ``worker --burst``, ``dispatch``, ``generate-key`` and ``rotate-key``.

After ``rotate-key`` the stored values are read back with plain SQL: every credential column
decrypts with the new key alone.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken

from e2e.helpers import clear_queue, deliveries, emit, make_webhook
from e2e.receiver import Receiver
from flask_trakkr_webhooks import get_state

CONFIG = dict(
    TRAKKR_WEBHOOKS_REQUIRE_HTTPS=False, TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=True, TRAKKR_WEBHOOKS_TIMEOUT=2
)


@pytest.fixture
def worker_app(make_app):
    worker_app = make_app(**CONFIG)
    yield worker_app
    clear_queue(worker_app)


def test_burst_worker_delivers_what_is_queued_and_exits(worker_app):
    with Receiver(secret="whsec_e2e", auth=("Authorization", "Bearer tok_e2e")) as rx:
        make_webhook(worker_app, rx.url + "/hooks")
        make_webhook(worker_app, rx.url + "/other")
        event_id = emit(worker_app)
        result = worker_app.test_cli_runner().invoke(args=["webhooks", "worker", "--burst"])
        assert result.exit_code == 0, result.output
        assert sorted(r.path for r in rx.received) == ["/hooks", "/other"]
        assert all(r.signature_ok and r.auth_ok for r in rx.received)
    assert {d["status"] for d in deliveries(worker_app, event_id)} == {"succeeded"}


def test_dispatch_enqueues_pending_deliveries(worker_app):
    make_webhook(worker_app, "http://127.0.0.1:9/hooks")
    with worker_app.app_context():
        worker_app.webhooks.emit("visibility_changed", brand={"id": "3f2b8c1e-5d4a-4e7b-9c6d-1a2b3c4d5e6f"}, data={})
        worker_app.db.session.info.clear()  # as if Redis had been down at commit
        worker_app.db.session.commit()
    runner = worker_app.test_cli_runner()
    result = runner.invoke(args=["webhooks", "dispatch"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == ("enqueued 1 deliveries (pending 1, lost jobs 0, stuck 0, overdue retries 0)")
    assert runner.invoke(args=["webhooks", "dispatch"]).output.startswith("enqueued 0 deliveries")


def test_a_worker_run_in_process_gives_back_the_signal_handlers(worker_app):
    import signal

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    result = worker_app.test_cli_runner().invoke(args=["webhooks", "worker", "--burst"])
    assert result.exit_code == 0, result.output
    # RQ installs its own (a later signal would raise StopRequested in this process): not any more.
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_dispatch_says_why_when_redis_is_down(make_app):
    worker_app = make_app(TRAKKR_WEBHOOKS_REDIS_URL="redis://127.0.0.1:1/0", **CONFIG)
    make_webhook(worker_app, "http://127.0.0.1:9/hooks")
    emit(worker_app)
    result = worker_app.test_cli_runner().invoke(args=["webhooks", "dispatch"])
    assert result.exit_code == 1
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in result.output and "Traceback" not in result.output


def test_cli_help_names_the_commands(worker_app):
    result = worker_app.test_cli_runner().invoke(args=["webhooks", "--help"])
    assert "worker" in result.output and "dispatch" in result.output
    assert "--burst" in worker_app.test_cli_runner().invoke(args=["webhooks", "worker", "--help"]).output


OLD = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="


NEW = "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg="


BRAND = "3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c"


COLUMNS = ("auth_token", "auth_password", "api_key_value", "signing_secret", "previous_signing_secret")


def _cli(app, *args):
    return app.test_cli_runner().invoke(args=["webhooks", *args])


def _raw(app) -> dict[tuple[str, str], str]:
    """(webhook id, column) -> the stored text, for every non-null credential."""
    with app.app_context():
        rows = (
            get_state(app)
            .db.session.execute(sa.text(f"SELECT id, {', '.join(COLUMNS)} FROM trakkr_webhooks"))
            .mappings()
            .all()
        )
    return {(row["id"], column): row[column] for row in rows for column in COLUMNS if row[column] is not None}


def _plain(stored: str, key: str) -> str:
    assert stored.startswith("fernet:"), stored
    return Fernet(key).decrypt(stored[len("fernet:") :].encode()).decode()


def _seed(app) -> dict[tuple[str, str], str]:
    """Three webhooks through the API, one credential of each kind, one rotated secret; the plaintexts."""
    client = app.test_client()
    expected = {}
    for auth, secret in (
        (dict(auth_type="bearer", auth_token="tok-bearer-1"), "secret-one-0123456789"),
        (dict(auth_type="basic", auth_username="ann", auth_password="pw-basic-2"), None),
        (dict(auth_type="api_key", api_key_header="X-Key", api_key_value="key-value-3"), "generate"),
    ):
        body = {"url": "https://r.example/h", "events": ["visibility_changed"], "brand_id": BRAND, **auth}
        body["signing_secret"] = secret  # None: an explicit null, unsigned
        created = client.post("/webhooks", json=body).get_json()
        for column in ("auth_token", "auth_password", "api_key_value"):
            if column in auth:
                expected[(created["id"], column)] = auth[column]
        if created["signing_secret"]:
            expected[(created["id"], "signing_secret")] = created["signing_secret"]
    rotated = next(hook for hook, column in expected if column == "signing_secret")
    new_secret = client.post(f"/webhooks/{rotated}/rotate-secret").get_json()["signing_secret"]
    expected[(rotated, "previous_signing_secret")] = expected[(rotated, "signing_secret")]
    expected[(rotated, "signing_secret")] = new_secret
    return expected


def test_generate_key_prints_a_new_fernet_key(app):
    first, second = _cli(app, "generate-key"), _cli(app, "generate-key")
    assert first.exit_code == 0 and second.exit_code == 0
    key = first.output.strip()
    assert key != second.output.strip()
    assert Fernet(key).decrypt(Fernet(key).encrypt(b"x")) == b"x"  # a usable key


def test_rotate_key_re_encrypts_every_credential_with_the_first_key(make_app):
    old_app = make_app(TRAKKR_WEBHOOKS_ENCRYPTION_KEY=OLD)
    expected = _seed(old_app)
    assert len(expected) == 6 and {column for _, column in expected} == set(COLUMNS)
    before = _raw(old_app)
    assert set(before) == set(expected)
    assert {key: _plain(value, OLD) for key, value in before.items()} == expected

    both = make_app(TRAKKR_WEBHOOKS_ENCRYPTION_KEY=f"{NEW},{OLD}")  # same database, new key first
    result = _cli(both, "rotate-key")
    assert result.exit_code == 0, result.output
    assert "trakkr_webhooks.auth_token: 1 re-encrypted" in result.output
    assert "trakkr_webhooks.previous_signing_secret: 1 re-encrypted" in result.output
    assert result.output.strip().endswith("re-encrypted 6 values with the first key")

    after = _raw(both)
    assert set(after) == set(expected)
    for key, stored in after.items():
        assert stored != before[key]
        assert _plain(stored, NEW) == expected[key]
        with pytest.raises(InvalidToken):
            _plain(stored, OLD)

    new_only = make_app(TRAKKR_WEBHOOKS_ENCRYPTION_KEY=NEW)  # the old key is gone: everything still reads
    hook_id = next(hook for hook, column in expected if column == "previous_signing_secret")
    assert (
        new_only.test_client().get(f"/webhooks/{hook_id}").get_json()["signing_secret"]
        == expected[(hook_id, "signing_secret")]
    )
    again = _cli(new_only, "rotate-key")
    assert again.exit_code == 0 and again.output.strip().endswith("re-encrypted 0 values with the first key")


def test_rotate_key_encrypts_values_stored_without_a_key(make_app):
    unkeyed = make_app()  # testing: stored as plain text
    expected = _seed(unkeyed)
    assert not any(value.startswith("fernet:") for value in _raw(unkeyed).values())
    keyed = make_app(TRAKKR_WEBHOOKS_ENCRYPTION_KEY=NEW)
    result = _cli(keyed, "rotate-key")
    assert result.exit_code == 0, result.output
    assert {key: _plain(value, NEW) for key, value in _raw(keyed).items()} == expected


def test_rotate_key_without_a_key_fails_and_says_how_to_make_one(app):
    result = _cli(app, "rotate-key")
    assert result.exit_code == 1
    assert "cannot rotate: TRAKKR_WEBHOOKS_ENCRYPTION_KEY is not set" in result.output
    assert "flask webhooks generate-key" in result.output


def test_rotate_key_without_the_old_key_fails_and_changes_nothing(make_app):
    old_app = make_app(TRAKKR_WEBHOOKS_ENCRYPTION_KEY=OLD)
    _seed(old_app)
    before = _raw(old_app)
    wrong = make_app(TRAKKR_WEBHOOKS_ENCRYPTION_KEY=NEW)  # the old key was dropped too early
    result = _cli(wrong, "rotate-key")
    assert result.exit_code == 1
    assert "cannot decrypt a stored webhook credential" in result.output
    assert _raw(wrong) == before


# -- setup problems: one line naming the fix, exit 1, no traceback ------------------------------

HOST_APP = """
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flask_trakkr_webhooks import TrakkrWebhooks

app = Flask(__name__)
app.config.update({config})
db = SQLAlchemy(app)
webhooks = TrakkrWebhooks(app, db)
"""


def _flask(tmp_path, config: dict, *args: str, app: str | None = "myapp") -> subprocess.CompletedProcess[str]:
    """``flask [--app myapp] webhooks ARGS`` in a fresh process, as a person runs it, in ``tmp_path``
    holding ``myapp.py`` built from ``config``."""
    (tmp_path / "myapp.py").write_text(HOST_APP.format(config=repr(config)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "TRAKKR_WEBHOOKS_"))}
    command = [sys.executable, "-m", "flask", *(["--app", app] if app else []), "webhooks", *args]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    return lines[0]


@pytest.mark.slow  # a fresh `flask` process, as a person runs it
def test_generate_key_runs_where_the_app_cannot_load_yet(tmp_path):
    # No key and no database configured: the app itself fails at import.
    done = _flask(tmp_path, {}, "generate-key")
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert Fernet(key).decrypt(Fernet(key).encrypt(b"x")) == b"x"


@pytest.mark.slow  # a fresh `flask` process, as a person runs it
def test_a_missing_encryption_key_is_one_line_naming_generate_key(tmp_path):
    line = _one_line_error(_flask(tmp_path, {"SQLALCHEMY_DATABASE_URI": "sqlite:///app.db"}, "worker"))
    assert "TRAKKR_WEBHOOKS_ENCRYPTION_KEY" in line and "flask webhooks generate-key" in line


@pytest.mark.slow  # a fresh `flask` process, as a person runs it
def test_a_missing_database_uri_is_one_line(tmp_path):
    line = _one_line_error(
        _flask(tmp_path, {"TRAKKR_WEBHOOKS_ENCRYPTION_KEY": Fernet.generate_key().decode()}, "dispatch")
    )
    assert "SQLALCHEMY_DATABASE_URI" in line


@pytest.mark.slow  # a fresh `flask` process, as a person runs it
def test_no_app_is_one_line_naming_flask_app(tmp_path):
    line = _one_line_error(_flask(tmp_path, {}, "dispatch", app=None))
    assert "FLASK_APP" in line and "--app" in line


BASE = {
    "SQLALCHEMY_DATABASE_URI": "sqlite:///app.db",
    "TRAKKR_WEBHOOKS_ENCRYPTION_KEY": "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=",
}


@pytest.mark.slow  # a fresh `flask` process, as a person runs it
def test_redis_down_is_one_line_naming_the_url_and_verbose_shows_the_traceback(tmp_path):
    config = {**BASE, "TRAKKR_WEBHOOKS_REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"}
    with_tables = {**config}
    (tmp_path / "make_tables.py").write_text(
        HOST_APP.format(config=repr(with_tables)) + "\nwith app.app_context():\n    db.create_all()\n"
    )
    subprocess.run([sys.executable, "make_tables.py"], cwd=tmp_path, check=True, timeout=60)
    line = _one_line_error(_flask(tmp_path, config, "worker", "--burst"))
    assert "cannot reach Redis at redis://:***@127.0.0.1:1/0" in line and "TRAKKR_WEBHOOKS_REDIS_URL" in line
    assert "hunter2" not in line
    verbose = _flask(tmp_path, config, "--verbose", "worker", "--burst")
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr


@pytest.mark.slow  # a fresh `flask` process, as a person runs it
def test_missing_tables_are_one_line_naming_create_all(tmp_path):
    line = _one_line_error(_flask(tmp_path, BASE, "dispatch"))
    assert "webhook tables are missing" in line and "flask webhooks db upgrade" in line
