"""The docs' Python examples run as a reader runs them.

Every ```python block of ``docs/*.md`` follows a marker, ``<!-- fragment: NAME -->``: ``NAME``
is the file the reader saves it as (a page's blocks with one name build on each other, in page
order) or, for a block that is only a setting or a signature, a ``*.conf`` / ``*.api`` name
checked against the real API. Files with a server are started under their framework's real
server (Flask's, Django's ``runserver``, uvicorn, ``wsgiref``) and sent deliveries signed by the
sender's own :mod:`flask_trakkr_webhooks.signing`; the page's claims are asserted: 2xx for a
good signature, 401 for a bad one, a repeated event acknowledged but not handled again.
:data:`COVERED` names the test of every fragment; a new, unlisted block fails
:func:`test_every_python_block_of_the_docs_is_a_listed_fragment`.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import alembic
import pytest
import requests
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from cryptography.fernet import Fernet
from flask import Flask
from test_docs_examples import Lines, _spawn, _stop, reader_env
from werkzeug.serving import make_server

from e2e.helpers import BRAND_ID, deliveries, emit, make_webhook
from e2e.receiver import Receiver, Reply
from flask_trakkr_webhooks import get_state, jobs
from flask_trakkr_webhooks.config import DEFAULTS, PREFIX
from flask_trakkr_webhooks.health import webhook_disabled
from flask_trakkr_webhooks.signing import generate_secret, signature_headers
from flask_trakkr_webhooks.testing import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MARKER = re.compile(r"^\s*<!-- fragment: ([\w.-]+) -->\s*$")
FENCE = re.compile(r"^(\s*)```python\s*$")

REFUSED_BRAND = "0b6f1c9e-2d4a-4f5b-8c3d-7e9a1b2c3d4e"

Key = tuple[str, str]  # (page, fragment name)


def fragments() -> tuple[dict[Key, str], list[str]]:
    """Every marked fragment's code (same-name blocks of a page joined in order), and the
    places of ```python blocks without a marker."""
    found: dict[Key, list[str]] = {}
    unmarked = []
    for page in sorted(DOCS.glob("*.md")):
        lines = page.read_text().splitlines()
        i = 0
        while i < len(lines):
            fence = FENCE.match(lines[i])
            if not fence:
                i += 1
                continue
            indent = fence.group(1)
            end = lines.index(f"{indent}```", i + 1)
            code = "\n".join(line.removeprefix(indent) for line in lines[i + 1 : end]) + "\n"
            marker = MARKER.match(lines[i - 1]) if i else None
            if marker:
                found.setdefault((page.name, marker.group(1)), []).append(code)
            else:
                unmarked.append(f"{page.name}:{i + 1}")
            i = end + 1
    return {key: "\n\n".join(parts) for key, parts in found.items()}, unmarked


def fragment(page: str, name: str) -> str:
    return fragments()[0][(page, name)]


#: The test that runs each fragment (a new fragment must be added here, with its test).
COVERED: dict[Key, str] = {
    ("receiving.md", "hooks.py"): "test_a_receiver_file_answers_deliveries_under_its_real_server",
    ("receiving.md", "wsgi_hook.py"): "test_a_receiver_file_answers_deliveries_under_its_real_server",
    ("receiving.md", "django_hook.py"): "test_a_receiver_file_answers_deliveries_under_its_real_server",
    ("receiving.md", "fastapi_hook.py"): "test_a_receiver_file_answers_deliveries_under_its_real_server",
    ("receiving.md", "test_hooks.py"): "test_a_pages_test_file_passes_under_pytest",
    ("receiver-kit.md", "kit_flask.py"): "test_a_receiver_file_answers_deliveries_under_its_real_server",
    ("receiver-kit.md", "kit_django.py"): "test_a_receiver_file_answers_deliveries_under_its_real_server",
    ("receiver-kit.md", "kit_fastapi.py"): "test_a_receiver_file_answers_deliveries_under_its_real_server",
    ("receiver-kit.md", "kit_starlette.py"): "test_a_receiver_file_answers_deliveries_under_its_real_server",
    ("receiver-kit.md", "test_kit.py"): "test_a_pages_test_file_passes_under_pytest",
    ("security.md", "encryption.conf"): "test_the_encryption_key_setting_encrypts_secrets_at_rest",
    ("security.md", "strict_hook.py"): "test_a_receiver_file_answers_deliveries_under_its_real_server",
    ("security.md", "on-disabled.api"): "test_the_on_disabled_hook_and_signal_hear_of_a_410_disabling",
    ("rate-limits.md", "rate-limits.conf"): "test_the_rate_limits_setting_is_each_webhooks_effective_rate",
    ("capacity.md", "managed-redis.conf"): "test_the_managed_redis_setting_is_a_verified_tls_url_naming_its_ca",
    ("rest-api.md", "access-policy.api"): "test_the_access_policy_decides_who_may_call_the_api",
    ("rest-api.md", "verify_preview.py"): "test_a_preview_verifies_with_the_receiver_kit_against_the_example_app",
    ("portal.md", "portal.conf"): "test_the_portal_settings_and_hooks_mount_a_portal_that_asks_the_policy",
    ("portal.md", "portal-hooks.api"): "test_the_portal_settings_and_hooks_mount_a_portal_that_asks_the_policy",
    ("providers.md", "formatters.py"): "test_the_custom_formatter_file_runs",
    ("upgrading.md", "version-locations.api"): "test_the_alembic_lines_upgrade_both_branches_and_keep_our_tables_out",
    ("upgrading.md", "env.py"): "test_the_alembic_lines_upgrade_both_branches_and_keep_our_tables_out",
    ("host-app.md", "emit.py"): "test_emit_py_stores_the_event_in_myapps_database",
    ("api-client.md", "client.py"): "test_openapi_client.test_the_docs_client_py_creates_a_signed_webhook",
}


def test_every_python_block_of_the_docs_is_a_listed_fragment() -> None:
    found, unmarked = fragments()
    assert not unmarked, f"```python blocks without a <!-- fragment: NAME --> marker: {unmarked}"
    assert set(found) == set(COVERED), "fragments and COVERED differ: list the new fragment with its test"
    for test in set(COVERED.values()):
        module, _, name = test.rpartition(".")
        where = vars(importlib.import_module(module)) if module else globals()
        assert callable(where.get(name)), f"COVERED names {test}, which is not a test"


# -- receivers under their real servers ------------------------------------------------------------


def _listening(port: int, proc: subprocess.Popen[str], lines: Lines, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            lines.until(r"$^", timeout=1)  # raises, with the server's output
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port} after {timeout} s")


def delivery(secret: str, event_id: str | None = None) -> tuple[bytes, dict[str, str]]:
    """A delivery's body and headers, signed by the sender's own code (both schemes)."""
    from receiver_kit.testing import sample_payload

    payload = sample_payload("report_completed", event_id=event_id, data={"report_id": "r_1"})
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "Trakkr-Webhooks/1.0"}
    headers.update(
        signature_headers(body, secret=secret, message_id=payload["meta"]["event_id"], timestamp=int(time.time()))
    )
    return body, headers


@pytest.fixture
def reader(tmp_path: Path, redis_url: str) -> Iterator[Any]:
    """Writes a page's fragments as the reader's files, and starts one under its server."""

    class Reader:
        secret = generate_secret()
        env = reader_env(TRAKKR_SIGNING_SECRET=secret, REDIS_URL=redis_url, PYTHONUNBUFFERED="1")
        procs: list[subprocess.Popen[str]] = []

        def write(self, page: str, name: str) -> Path:
            path = tmp_path / name
            path.write_text(fragment(page, name))
            return path

        def serve(self, args: list[str], port: int) -> Lines:
            proc = _spawn(args, tmp_path, {**self.env, "PORT": str(port)})
            self.procs.append(proc)
            lines = Lines(proc)
            _listening(port, proc, lines)
            return lines

    r = Reader()
    try:
        yield r
    finally:
        for proc in r.procs:
            _stop(proc)


#: How the page says each receiver file runs ({port}: a free port), and whether the page's
#: version handles a repeated event once.
SERVERS: dict[Key, tuple[list[str], bool]] = {
    ("receiving.md", "hooks.py"): (["flask", "--app", "hooks", "run", "--port", "{port}"], True),
    ("receiving.md", "wsgi_hook.py"): (["python", "wsgi_hook.py"], False),
    ("receiving.md", "django_hook.py"): (
        ["python", "django_hook.py", "runserver", "127.0.0.1:{port}", "--noreload"],
        True,
    ),
    ("receiving.md", "fastapi_hook.py"): (["uvicorn", "fastapi_hook:app", "--port", "{port}"], False),
    ("receiver-kit.md", "kit_flask.py"): (["flask", "--app", "kit_flask", "run", "--port", "{port}"], True),
    ("receiver-kit.md", "kit_django.py"): (
        ["python", "kit_django.py", "runserver", "127.0.0.1:{port}", "--noreload"],
        True,
    ),
    ("receiver-kit.md", "kit_fastapi.py"): (["uvicorn", "kit_fastapi:app", "--port", "{port}"], True),
    ("receiver-kit.md", "kit_starlette.py"): (["uvicorn", "kit_starlette:app", "--port", "{port}"], True),
    ("security.md", "strict_hook.py"): (["flask", "--app", "strict_hook", "run", "--port", "{port}"], False),
}
#: What the page says to run once before the server.
BEFORE: dict[Key, list[str]] = {("receiver-kit.md", "kit_django.py"): ["python", "kit_django.py", "migrate"]}


def check_receiver(url: str, secret: str, lines: Lines, *, once: bool) -> None:
    """A good delivery is handled (2xx), a bad signature refused (401, not handled); with
    ``once``, a repeated event is acknowledged (2xx) and not handled again."""
    body, headers = delivery(secret)
    event_id = json.loads(body)["meta"]["event_id"]
    first = requests.post(url, data=body, headers=headers, timeout=10)
    assert 200 <= first.status_code < 300, first.text
    lines.until(rf"handled {event_id}$", timeout=10)
    bad_body, bad_headers = delivery(generate_secret())
    refused = requests.post(url, data=bad_body, headers=bad_headers, timeout=10)
    assert refused.status_code == 401, refused.text
    if once:
        again = requests.post(url, data=body, headers=headers, timeout=10)
        assert 200 <= again.status_code < 300, again.text
        assert again.json()["duplicate"] is True
    fresh_body, fresh_headers = delivery(secret)
    assert requests.post(url, data=fresh_body, headers=fresh_headers, timeout=10).ok
    # Output is in order: by the fresh event's line, every earlier line has been read.
    lines.until(rf"handled {json.loads(fresh_body)['meta']['event_id']}$", timeout=10)
    handled = [line for line in lines.seen if line.endswith(f"handled {event_id}")]
    assert len(handled) == 1, lines.seen
    assert not any(json.loads(bad_body)["meta"]["event_id"] in line for line in lines.seen)


@pytest.mark.slow
@pytest.mark.parametrize("key", list(SERVERS), ids=lambda key: "/".join(key))
def test_a_receiver_file_answers_deliveries_under_its_real_server(reader: Any, tmp_path: Path, key: Key) -> None:
    page, name = key
    reader.write(page, name)
    args, once = SERVERS[key]
    if key in BEFORE:
        done = subprocess.run(BEFORE[key], cwd=tmp_path, env=reader.env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
    port = free_port()
    lines = reader.serve([arg.format(port=port) for arg in args], port)
    check_receiver(f"http://127.0.0.1:{port}/hooks/trakkr", reader.secret, lines, once=once)
    if key == ("receiving.md", "hooks.py"):  # the per-tenant secrets added to it
        body, headers = delivery(reader.secret)
        acme = requests.post(f"http://127.0.0.1:{port}/hooks/acme", data=body, headers=headers, timeout=10)
        assert acme.status_code == 200 and acme.json() == {"ok": True, "tenant": "acme"}, acme.text
        other = requests.post(f"http://127.0.0.1:{port}/hooks/other", data=body, headers=headers, timeout=10)
        assert other.status_code == 401 and other.json()["error"]["code"] == "no_secret", other.text
    if key == ("security.md", "strict_hook.py"):  # allow_legacy=False: X-Trakkr-Signature alone is refused
        body, headers = delivery(reader.secret)
        legacy = {k: v for k, v in headers.items() if not k.lower().startswith("webhook-")}
        refused = requests.post(f"http://127.0.0.1:{port}/hooks/trakkr", data=body, headers=legacy, timeout=10)
        assert refused.status_code == 401 and refused.json() == {"error": "missing_header"}, refused.text


#: A page's test file, and the files of the page it tests.
TEST_FILES: dict[Key, list[str]] = {
    ("receiving.md", "test_hooks.py"): ["hooks.py"],
    ("receiver-kit.md", "test_kit.py"): ["kit_flask.py", "kit_fastapi.py"],
}


@pytest.mark.slow
@pytest.mark.parametrize("key", list(TEST_FILES), ids=lambda key: "/".join(key))
def test_a_pages_test_file_passes_under_pytest(reader: Any, tmp_path: Path, key: Key) -> None:
    page, name = key
    for other in [*TEST_FILES[key], name]:
        reader.write(page, other)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name],
        cwd=tmp_path,
        env=reader.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b1 passed\b", done.stdout), done.stdout


# -- settings and hooks, on a real app ---------------------------------------------------------------


def settings_of(page: str, name: str, **env: str) -> dict[str, Any]:
    """What a config fragment sets on a Flask app's config (``os.environ`` holding ``env``)."""
    reader_app = Flask("reader")
    before = dict(reader_app.config)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        exec(fragment(page, name), {"app": reader_app, "os": os})
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    changed = {k: v for k, v in reader_app.config.items() if k not in before or before[k] != v}
    assert changed, f"{page} {name} sets nothing"
    for setting in changed:  # every extension setting is one of the documented (generated) table's
        assert setting == "SECRET_KEY" or setting.removeprefix(PREFIX) in DEFAULTS, setting
    return changed


def hooks_on(app: Flask, page: str, name: str, **names: Any) -> None:
    """Run a fragment that registers hooks on the host's ``webhooks`` (``names``: the reader's own)."""
    exec(fragment(page, name), {"webhooks": app.webhooks, **names})  # type: ignore[attr-defined]


def test_the_encryption_key_setting_encrypts_secrets_at_rest(make_app: Any) -> None:
    key = Fernet.generate_key().decode()
    settings = settings_of("security.md", "encryption.conf", TRAKKR_WEBHOOKS_ENCRYPTION_KEY=key)
    assert settings == {"TRAKKR_WEBHOOKS_ENCRYPTION_KEY": key}
    app = make_app(**settings)
    created = app.test_client().post(
        "/webhooks", json={"url": "https://hooks.example.com/x", "events": ["visibility_changed"], "brand_id": BRAND_ID}
    )
    assert created.status_code == 201, created.text
    with app.app_context():
        stored = app.db.session.execute(  # type: ignore[attr-defined]
            sa.text("SELECT signing_secret FROM trakkr_webhooks WHERE id = :id"), {"id": created.json["id"]}
        ).scalar_one()
    assert stored.startswith("fernet:")
    assert (
        Fernet(key.encode()).decrypt(stored.removeprefix("fernet:").encode()).decode() == created.json["signing_secret"]
    )


def test_the_rate_limits_setting_is_each_webhooks_effective_rate(make_app: Any) -> None:
    app = make_app(**settings_of("rate-limits.md", "rate-limits.conf"))
    client = app.test_client()
    for url, expected in [
        ("https://hooks.example.com/x", [{"requests": 50, "per_seconds": 1}]),
        ("https://hooks.slack.com/services/T0/B0/x", [{"requests": 1, "per_seconds": 1}]),
    ]:
        created = client.post("/webhooks", json={"url": url, "events": ["visibility_changed"], "brand_id": BRAND_ID})
        assert created.status_code == 201, created.text
        assert created.json["effective_rate_limit"] == expected, (url, created.json)


def test_the_managed_redis_setting_is_a_verified_tls_url_naming_its_ca() -> None:
    # The URL form itself is delivered through end to end in tests/e2e/test_redis_tls_e2e.py.
    import redis

    [url] = settings_of("capacity.md", "managed-redis.conf").values()
    pool = redis.Redis.from_url(url).connection_pool
    assert pool.connection_class is redis.SSLConnection
    assert pool.connection_kwargs["ssl_ca_certs"] == "/etc/ssl/redis-ca.pem"
    assert pool.connection_kwargs["ssl_cert_reqs"] == "required"
    assert (pool.connection_kwargs["host"], pool.connection_kwargs["port"]) == ("redis.internal", 6380)


def test_the_access_policy_decides_who_may_call_the_api(make_app: Any) -> None:
    app = make_app(SECRET_KEY="test", TRAKKR_WEBHOOKS_OPEN_API=False)
    app.testing = False  # the policy, not testing mode's open API
    hooks_on(app, "rest-api.md", "access-policy.api")
    client = app.test_client()
    with client.session_transaction() as session:
        session["brand_id"] = BRAND_ID
    assert client.get(f"/webhooks?brand_id={BRAND_ID}").status_code == 200
    assert client.get(f"/webhooks?brand_id={REFUSED_BRAND}").status_code == 403


def test_the_portal_settings_and_hooks_mount_a_portal_that_asks_the_policy(make_app: Any) -> None:
    settings = settings_of("portal.md", "portal.conf")
    assert settings["TRAKKR_WEBHOOKS_PORTAL"] is True
    app = make_app(**settings)
    app.testing = False
    hooks_on(app, "portal.md", "portal-hooks.api")
    client = app.test_client()
    with client.session_transaction() as session:
        session["brands"] = {BRAND_ID: "Acme Portal Brand"}
    picker = client.get("/webhooks/portal")
    assert picker.status_code == 200 and "Acme Portal Brand" in picker.text
    assert client.get(f"/webhooks/portal?brand_id={BRAND_ID}").status_code == 200
    assert client.get(f"/webhooks/portal?brand_id={REFUSED_BRAND}").status_code == 403


def test_the_on_disabled_hook_and_signal_hear_of_a_410_disabling(new_app: Any, plain_receiver: Receiver) -> None:
    app = new_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[])
    told: list[tuple[str, str]] = []
    counted: list[str] = []

    class Metrics:  # the reader's own metrics client
        def incr(self, name: str) -> None:
            counted.append(name)

    receivers = list(webhook_disabled.receivers)
    try:
        hooks_on(
            app,
            "security.md",
            "on-disabled.api",
            notify_brand_owner=lambda brand_id, message: told.append((brand_id, message)),
            metrics=Metrics(),
        )
        make_webhook(app, plain_receiver.url + "/gone")
        plain_receiver.script(Reply(410, body=b"gone"))
        event_id = emit(app)
        with app.app_context():
            jobs.process_batch(get_state(app), [d["id"] for d in deliveries(app, event_id)])
    finally:
        for receiver_id in set(webhook_disabled.receivers) - set(receivers):
            webhook_disabled.disconnect(webhook_disabled.receivers[receiver_id])
    assert len(told) == 1 and told[0][0] == BRAND_ID, told
    assert told[0][1].startswith(f"Webhook {plain_receiver.url}/gone was disabled: the endpoint answered 410 Gone")
    assert counted == ["webhooks.disabled"]  # the signal's receiver (weak=False) still connected


# -- files run as the reader runs them ------------------------------------------------------------


def run_file(cwd: Path, args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_the_custom_formatter_file_runs(tmp_path: Path) -> None:
    (tmp_path / "formatters.py").write_text(fragment("providers.md", "formatters.py"))
    out = run_file(tmp_path, ["python", "formatters.py"], reader_env()).splitlines()
    assert out[0] == "pagerduty"
    pagerduty = ast.literal_eval(out[1])
    assert pagerduty["summary"] == "Acme's visibility rose 40.2%" and pagerduty["severity"] == "warning"
    assert ast.literal_eval(out[2]) == {"text": "Acme's visibility rose 40.2%"}
    assert out[3] == "header"


@pytest.mark.slow
def test_emit_py_stores_the_event_in_myapps_database(tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "myapp.py").write_text((DOCS / "examples" / "myapp.py").read_text())
    (tmp_path / "emit.py").write_text(fragment("host-app.md", "emit.py"))
    env = reader_env(
        TRAKKR_WEBHOOKS_ENCRYPTION_KEY=Fernet.generate_key().decode(), REDIS_URL=redis_url, MYAPP_ADMIN_TOKEN="t"
    )
    event_id = run_file(tmp_path, ["python", "emit.py"], env).strip()
    assert re.fullmatch(r"evt_[0-9a-f]{24}", event_id), event_id
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'instance' / 'myapp.db'}")
    with engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT id FROM trakkr_webhook_events")).scalars().all()
    engine.dispose()
    assert stored == [event_id]


def test_the_alembic_lines_upgrade_both_branches_and_keep_our_tables_out(tmp_path: Path) -> None:
    """upgrading.md's ``Config`` callback, and its lines in a host's ``env.py`` (Flask-Migrate's, reduced)."""
    scripts = tmp_path / "migrations"
    (scripts / "versions").mkdir(parents=True)
    # The revision template, as `flask db init` (or `alembic init`) copies it.
    shutil.copy(Path(alembic.__file__).parent / "templates" / "generic" / "script.py.mako", scripts)
    (scripts / "env.py").write_text(
        "from alembic import context\n\n"
        "config = context.config\n"
        "connection = config.attributes['connection']\n"
        "target_metadata = config.attributes['target_metadata']\n\n"
        + fragment("upgrading.md", "env.py")
        + "\nwith context.begin_transaction():\n    context.run_migrations()\n"
    )
    host = sa.MetaData()
    sa.Table("host_things", host, sa.Column("id", sa.Integer, primary_key=True))
    config = Config()
    config.set_main_option("script_location", str(scripts))
    page: dict[str, Any] = {}
    exec(fragment("upgrading.md", "version-locations.api"), page)
    config = page["add_trakkr_versions"](config)  # as Flask-Migrate's migrate.configure callbacks run
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'host.db'}")
    with engine.begin() as connection:
        config.attributes.update(connection=connection, target_metadata=host)
        command.upgrade(config, "heads")  # finds the extension's branch
        assert "trakkr_webhooks" in sa.inspect(connection).get_table_names()
        # The host's own branch, in its own folder (never the installed package's).
        command.revision(
            config,
            "host things",
            autogenerate=True,
            rev_id="host0001",
            head="base",
            branch_label="host",
            version_path=str(scripts / "versions"),
        )
    command.revision(config, "more", rev_id="host0002", head="host@head")  # the page's next ones
    engine.dispose()
    assert sorted(p.name for p in (scripts / "versions").glob("*.py")) == [
        "host0001_host_things.py",
        "host0002_more.py",
    ]
    revision = (scripts / "versions" / "host0001_host_things.py").read_text()
    assert "host_things" in revision
    assert "trakkr_webhook" not in revision  # include_object kept the extension's tables out


# -- the example app, served ----------------------------------------------------------------------


@pytest.fixture
def example_server(example: Any) -> Iterator[tuple[str, dict[str, str]]]:
    """The example app over HTTP on 127.0.0.1: its URL and its brands' API keys."""
    app, keys = example
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", keys
    finally:
        server.shutdown()
        thread.join(5)


@pytest.mark.slow
def test_a_preview_verifies_with_the_receiver_kit_against_the_example_app(
    example_server: tuple[str, dict[str, str]], plain_receiver: Receiver, tmp_path: Path
) -> None:
    api, keys = example_server
    key = next(iter(keys.values()))
    auth = {"Authorization": f"Bearer {key}"}
    brand_id = requests.get(f"{api}/brands/me", headers=auth, timeout=10).json()["id"]
    created = requests.post(
        f"{api}/webhooks",
        headers=auth,
        json={"url": plain_receiver.url + "/hooks/trakkr", "events": ["visibility_changed"], "brand_id": brand_id},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    (tmp_path / "verify_preview.py").write_text(fragment("rest-api.md", "verify_preview.py"))
    out = run_file(tmp_path, ["python", "verify_preview.py"], reader_env(API=api, KEY=key, WH=created.json()["id"]))
    assert out == "the preview's signature verifies\n"
