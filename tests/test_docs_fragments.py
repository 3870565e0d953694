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

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from test_docs_examples import Lines, _spawn, _stop, reader_env

from flask_trakkr_webhooks.signing import generate_secret, signature_headers
from flask_trakkr_webhooks.testing import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MARKER = re.compile(r"^\s*<!-- fragment: ([\w.-]+) -->\s*$")
FENCE = re.compile(r"^(\s*)```python\s*$")

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
}


def test_every_python_block_of_the_docs_is_a_listed_fragment() -> None:
    found, unmarked = fragments()
    assert not unmarked, f"```python blocks without a <!-- fragment: NAME --> marker: {unmarked}"
    assert set(found) == set(COVERED), "fragments and COVERED differ: list the new fragment with its test"
    for test in set(COVERED.values()):
        assert callable(globals().get(test)), f"COVERED names {test}, which is not a test here"


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
