"""Progress bars for long CLI work: counts and rate on a terminal, silent otherwise."""

from __future__ import annotations

import io

from cryptography.fernet import Fernet

from flask_trakkr_webhooks import crypto, get_state
from flask_trakkr_webhooks.progress import Progress

BRAND = "3f2b8c1e-5d4a-4e7b-9c6d-1a2b3c4d5e6f"


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_line_shows_counts_share_and_rate() -> None:
    out = Terminal()
    with Progress("re-encrypting", 5000, stream=out) as bar:
        bar.advance(1200)
        assert bar.line().startswith("re-encrypting [" + "#" * 7 + "." * 23 + "] 1,200/5,000 24% ")
        assert bar.line().endswith("/s")
        bar.advance(3800)
    text = out.getvalue()
    assert text.startswith("\rre-encrypting [")
    assert text.endswith("] 5,000/5,000 100% " + text.rsplit("100% ", 1)[1])
    assert text.endswith("/s\n")


def test_not_a_terminal_writes_nothing() -> None:
    out = io.StringIO()
    with Progress("dispatching", 10, stream=out) as bar:
        bar.advance(10)
    assert out.getvalue() == ""
    assert bar.done == 10


def test_an_empty_job_is_complete() -> None:
    assert Progress("nothing", 0, stream=io.StringIO()).line().startswith("nothing [" + "#" * 30 + "] 0/0 100%")


def test_rotate_advances_one_step_per_row_and_the_cli_stays_quiet_off_a_terminal(make_app) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    app = make_app(TRAKKR_WEBHOOKS_ENCRYPTION_KEY=old)
    client = app.test_client()
    for i in range(3):
        body = {"url": f"https://r.example/{i}", "events": ["visibility_changed"], "brand_id": BRAND}
        assert client.post("/webhooks", json={**body, "auth_type": "bearer", "auth_token": f"t{i}"}).status_code == 201

    rotated = make_app(TRAKKR_WEBHOOKS_ENCRYPTION_KEY=f"{new},{old}")  # the same database
    out = Terminal()
    bars: list[Progress] = []

    def progress(table: str, rows: int) -> Progress:
        bars.append(Progress(table, rows, stream=out))
        return bars[-1]

    with rotated.app_context():
        state = get_state(rotated)
        counts = crypto.rotate(state.db.session, state.models, progress=progress)
    assert counts["trakkr_webhooks.auth_token"] == 3
    assert [(b.label, b.done, b.total) for b in bars] == [("trakkr_webhooks", 3, 3)]
    assert "trakkr_webhooks [" + "#" * 30 + "] 3/3 100%" in out.getvalue()

    result = make_app(TRAKKR_WEBHOOKS_ENCRYPTION_KEY=new).test_cli_runner().invoke(args=["webhooks", "rotate-key"])
    assert result.exit_code == 0, result.output
    assert "[" not in result.output and "/s" not in result.output  # CliRunner is not a terminal
