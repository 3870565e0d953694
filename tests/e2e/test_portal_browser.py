"""The portal in a real browser: Debian's Chromium driven by Playwright, against the example app
served over HTTP, with a real RQ worker process and a real receiver on 127.0.0.1.

The flows of issue 13: sign in, create a webhook through the form (the provider detected as the
URL is typed), send a test and see its attempt, emit an event and see it delivered, make the
receiver fail and redeliver, replay since a time, rotate the secret, disable and re-enable, the
live template preview, the health chart and the event catalog. Every console error and every
CSP violation fails the test. Screenshots of each page go to ``$PORTAL_SCREENSHOTS`` (default: the
test's temporary folder; the docs' screenshots are taken with ``PORTAL_SCREENSHOTS=docs/_static/portal``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet
from werkzeug.serving import make_server

from e2e.conftest import ROOT, wait_until
from e2e.receiver import Receiver, Reply

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium")
ACME = "3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c"

if not Path(CHROMIUM).exists():  # pragma: no cover
    pytest.skip(
        f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium; .ci/run installs it)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra has it)")


@pytest.fixture
def site(request: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The example app served on 127.0.0.1 with its worker; ``{"base", "key", "app", "receiver"}``."""
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("TRAKKR_WEBHOOKS_ENCRYPTION_KEY", key)
    app, keys = request.getfixturevalue("example")
    app.config.update(TRAKKR_WEBHOOKS_TIMEOUT=2)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = dict(
        os.environ,
        DATABASE_URL=os.environ["DATABASE_URL"],
        TRAKKR_WEBHOOKS_QUEUE=app.config["TRAKKR_WEBHOOKS_QUEUE"],
        PYTHONUNBUFFERED="1",
    )
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "example_app", "webhooks", "worker"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with Receiver() as rx:
            yield {"base": f"http://127.0.0.1:{server.server_port}", "key": keys["acme"], "receiver": rx}
    finally:
        try:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(worker.pid, signal.SIGKILL)
        log.close()
        server.shutdown()
        print("--- worker.log ---\n" + (tmp_path / "worker.log").read_text(errors="replace")[-3000:])


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[tuple[Any, list[str]]]:
    """A Chromium page and the list its console errors, page errors and CSP violations go to."""
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        # A CSP violation is logged by Chromium as a console error; report it by the event too.
        page.add_init_script(
            "document.addEventListener('securitypolicyviolation', function (e) {"
            " console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI); });"
        )
        page.set_default_timeout(15_000)
        try:
            yield page, problems
        finally:
            browser.close()


@pytest.fixture
def shots(tmp_path: Path) -> Any:
    """``shots(page, name)`` saves a full-page screenshot as ``<name>.png``."""
    folder = Path(os.environ.get("PORTAL_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str) -> None:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    take.folder = folder  # type: ignore[attr-defined]
    return take


def simulate(site: dict[str, Any]) -> str:
    """Emit a ``visibility_changed`` event for Acme through the example app's endpoint."""
    response = requests.post(
        f"{site['base']}/simulate/visibility", headers={"Authorization": f"Bearer {site['key']}"}, timeout=10
    )
    assert response.status_code == 202, response.text
    return str(response.json()["event_id"])


def log_rows(page: Any) -> list[str]:
    """The delivery log's rows as text, newest first."""
    return [row.inner_text() for row in page.locator("table.deliveries tbody tr").all()]


def wait_for_log(page: Any, webhook_url: str, predicate: Any, what: str) -> list[str]:
    """Reload the webhook page until its log satisfies ``predicate``."""

    def check() -> Any:
        page.goto(webhook_url)
        rows = log_rows(page)
        return rows if predicate(rows) else None

    return list(wait_until(check, 20, what, interval=0.5))


def test_portal_flows_in_chromium(site: dict[str, Any], browser_page: tuple[Any, list[str]], shots: Any) -> None:
    page, problems = browser_page
    rx: Receiver = site["receiver"]
    base = site["base"]

    # Sign in with the brand's API key.
    page.goto(f"{base}/webhooks/portal")
    assert "/login" in page.url
    shots(page, "01-sign-in")
    page.get_by_label("Your brand's API key").fill(site["key"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/webhooks/portal\?brand_id="))
    assert page.get_by_role("heading", name="Webhooks").is_visible()

    # Create a webhook through the form; the provider is detected as the URL is typed.
    page.get_by_role("link", name="New webhook").click()
    page.get_by_label("Endpoint URL").fill("https://hooks.slack.com/services/T0/B0/x")
    page.get_by_text("Detected format: slack").wait_for()
    page.locator("#preview-body", has_text='"blocks"').wait_for()  # Slack's format, previewed live
    page.get_by_label("Endpoint URL").fill(f"{rx.url}/hooks/portal")
    page.get_by_text("Detected format: webhook").wait_for()
    page.get_by_label("Description").fill("Portal test hook")
    page.get_by_label("visibility_changed").check()
    shots(page, "02-new-webhook")
    page.get_by_role("button", name="Create webhook").click()
    page.get_by_text("created.").wait_for()
    webhook_url = page.url.split("?")[0]
    assert re.search(r"/webhooks/portal/wh_[A-Za-z0-9_-]+$", webhook_url)

    # Send a test and see its attempt.
    page.get_by_role("button", name="Send a test").click()
    page.get_by_text("Test sent: the endpoint answered 200.").wait_for()
    assert page.get_by_role("heading", name=re.compile("Attempt 1")).is_visible()
    shots(page, "03-test-delivery")

    # Emit an event and see it delivered by the worker.
    simulate(site)
    wait_for_log(
        page,
        webhook_url,
        lambda rows: any("visibility_changed" in r and "succeeded" in r and "(test)" not in r for r in rows),
        "the event delivered",
    )

    # The receiver fails (hostile body): the delivery fails; redeliver it once the receiver is back.
    rx.script(Reply(400, {}, b'<script>alert("receiver")</script>'))
    simulate(site)
    wait_for_log(page, webhook_url, lambda rows: "failed" in rows[0], "the failed delivery")
    shots(page, "04-delivery-log")
    page.locator("table.deliveries tbody tr").first.get_by_role("link").click()
    assert page.locator("pre.response-body").inner_text() == '<script>alert("receiver")</script>'
    shots(page, "05-failed-delivery")
    page.get_by_role("button", name="Redeliver").click()
    page.get_by_text(re.compile("Redelivery dlv_.* queued.")).wait_for()
    wait_for_log(page, webhook_url, lambda rows: rows[0].count("succeeded") and "failed" in rows[1], "the redelivery")

    # Replay since a time: another failed delivery is sent again as a new one.
    rx.script(Reply(503, {}, b"down"), Reply(503, {}, b"down"), Reply(503, {}, b"down"), Reply(503, {}, b"down"))
    simulate(site)
    wait_for_log(page, webhook_url, lambda rows: "failed" in rows[0], "the second failed delivery")
    page.get_by_role("button", name="Replay").click()
    page.get_by_text("Replayed 1 deliveries since").wait_for()
    wait_for_log(page, webhook_url, lambda rows: "succeeded" in rows[0] and "failed" in rows[1], "the replay")

    # Rotate the signing secret: shown once.
    page.get_by_role("button", name="Rotate signing secret").click()
    secret = page.get_by_label("New secret").input_value()
    assert secret.startswith("whsec_")
    shots(page, "06-rotated-secret")
    page.goto(webhook_url)
    assert secret not in page.content()

    # Disable, then enable.
    page.get_by_role("button", name="Disable").click()
    page.get_by_text("Webhook disabled.").wait_for()
    assert page.locator(".facts .status-disabled").inner_text() == "disabled"
    page.get_by_role("button", name="Enable").click()
    page.get_by_text("Webhook enabled.").wait_for()
    assert page.locator(".facts .status-active").inner_text() == "active"
    shots(page, "07-webhook")

    # Edit: the template's live preview.
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Body template (JSON; blank: the provider's format)").fill(
        '{"text": "{{ event.type }} for {{ brand.name }}"}'
    )
    page.get_by_text('"text": "visibility_changed for Acme (test)"').wait_for()
    shots(page, "08-edit-preview")

    # Health and the event catalog.
    page.goto(webhook_url + "/health")
    assert page.locator("svg.health-chart").count() == 2
    shots(page, "09-health")
    page.goto(f"{base}/webhooks/portal/events")
    assert page.get_by_role("heading", name="visibility_changed").is_visible()
    shots(page, "10-event-catalog")
    page.goto(f"{base}/webhooks/portal?brand_id={ACME}")
    shots(page, "00-webhooks")

    assert problems == [], problems
