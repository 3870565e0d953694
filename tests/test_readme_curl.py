"""Every ``curl`` command in README.md runs, in order, against the example app.

The README's examples use the shell variables the demo prints (``$API``, ``$KEY``, ``$WH``)
and ``$DLV`` (a delivery id, taken from the first deliveries list that shows one). ``$WH`` stays
the demo's webhook throughout, as for a reader who pasted the demo's line. The receiver address
``127.0.0.1:9000`` in the examples is swapped for a local server of this test.
"""

from __future__ import annotations

import re
import shlex
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

README = Path(__file__).resolve().parent.parent / "README.md"
RECEIVER_IN_README = "127.0.0.1:9000"


def curl_commands(markdown: str) -> list[str]:
    """The ``curl`` commands of the README's bash blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, flags=re.S):
        pending = ""
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            pending = f"{pending}\n{line}" if pending else line
            try:  # a quoted JSON body may span lines: wait for its closing quote
                shlex.split(pending)
            except ValueError:
                continue
            if pending.strip().startswith("curl "):
                commands.append(pending.strip())
            pending = ""
    return commands


def parse_curl(command: str) -> dict:
    """The method, URL, headers and body of a curl command line (the options the README uses)."""
    args = shlex.split(command)[1:]
    method, url, headers, data = None, None, {}, None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-X", "--request"):
            method = args[i + 1]
            i += 2
        elif arg in ("-H", "--header"):
            name, _, value = args[i + 1].partition(":")
            headers[name.strip()] = value.strip()
            i += 2
        elif arg in ("-d", "--data", "--data-raw"):
            data = args[i + 1]
            i += 2
        elif arg in ("-s", "-S", "-i", "-sS", "--silent", "--fail"):
            i += 1
        elif arg.startswith("-"):
            raise AssertionError(f"the README uses a curl option this test does not know: {arg}")
        else:
            url = arg
            i += 1
    assert url, f"no URL in {command!r}"
    return {"method": method or ("POST" if data is not None else "GET"), "url": url, "headers": headers, "data": data}


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def example_server(example):
    """The example app served on 127.0.0.1, a receiver for it, and the demo's variables."""
    app, keys = example
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (receiver, server)]
    for t in threads:
        t.start()
    try:
        api = f"http://127.0.0.1:{server.server_port}"
        receiver_addr = f"127.0.0.1:{receiver.server_port}"
        # What the demo registers before it prints its export line.
        hook = requests.post(
            f"{api}/webhooks",
            json={
                "url": f"http://{receiver_addr}/hooks/trakkr",
                "brand_id": "3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c",
                "events": [
                    "visibility_changed",
                    "report_completed",
                    "competitor_added",
                    "citation_gained",
                    "citation_lost",
                ],
                "signing_secret": "s" * 32,
            },
            headers={"Authorization": f"Bearer {keys['acme']}"},
            timeout=10,
        )
        assert hook.status_code == 201, hook.text
        yield {"API": api, "KEY": keys["acme"], "WH": hook.json()["id"], "RECEIVER": receiver_addr}
    finally:
        server.shutdown()
        receiver.shutdown()


def test_readme_has_curl_examples_for_every_documented_route() -> None:
    commands = curl_commands(README.read_text())
    paths = {re.sub(r"\?.*", "", parse_curl(c)["url"]) for c in commands}
    for needed in (
        "$API/webhooks",
        "$API/webhooks/$WH",
        "$API/webhooks/$WH/deliveries",
        "$API/webhooks/$WH/test",
        "$API/webhooks/$WH/deliveries/$DLV/redeliver",
        "$API/webhooks/$WH/preview",
        "$API/webhooks/$WH/rotate-secret",
        "$API/webhooks/$WH/replay",
    ):
        assert needed in paths, f"README has no curl example for {needed}"


def test_every_readme_curl_command_works_against_the_example_app(example_server) -> None:
    variables = dict(example_server)
    commands = curl_commands(README.read_text())
    assert len(commands) >= 10
    for command in commands:
        if "$DLV" in command:
            assert "DLV" in variables, f"no delivery id known before {command!r}"
        expanded = command.replace(RECEIVER_IN_README, variables["RECEIVER"])
        for name, value in sorted(variables.items(), key=lambda kv: -len(kv[0])):
            expanded = expanded.replace("$" + name, value)
        assert "$" not in expanded.replace("$.", ""), f"unknown variable in {command!r}"
        call = parse_curl(expanded)
        response = requests.request(
            call["method"],
            call["url"],
            headers=call["headers"],
            data=call["data"].encode() if call["data"] else None,
            timeout=15,
        )
        assert response.status_code < 400, f"{command}\n -> {response.status_code} {response.text}"
        body = response.json()
        for item in body.get("data", []) if isinstance(body, dict) else []:
            if str(item.get("id", "")).startswith("dlv_") and not item.get("is_test"):
                variables.setdefault("DLV", item["id"])
    assert "DLV" in variables
