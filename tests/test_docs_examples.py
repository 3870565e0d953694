"""The README's and the docs' examples run as a reader runs them.

* The README's files (``myapp.py``, ``receiver.py``, ``quickstart.sh``) are the ones in
  ``docs/examples/`` (the tutorial includes those), and ``quickstart.sh`` runs with bash in a
  folder holding the two Python files, to a verified delivery.
* ``python -m example_app.demo --keep-running`` (what ``dev.py demo --keep-running`` runs in
  its venv) is started; with only the variables its ``export`` line prints, every ``curl``
  command of the docs' pages runs, in the order of the pages, its arguments expanded by bash
  exactly as the reader's shell expands them. The ``DELETE`` example runs last, as the REST API
  page says (it removes the demo's webhook).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
#: Pages whose curl examples run, in this order; every other page with curl examples follows.
PAGE_ORDER = ("rest-api.md", "security.md", "rate-limits.md")
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def curl_commands(markdown: str) -> list[str]:
    """The ``curl`` commands of the bash blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, flags=re.S):
        pending = ""
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            pending = f"{pending}\n{line}" if pending else line
            try:  # a quoted JSON body may span lines: wait for its closing quote
                shlex.split(pending, comments=True)
            except ValueError:
                continue
            if pending.strip().startswith("curl "):
                commands.append(pending.strip())
            pending = ""
    return commands


def _before_pipe(command: str) -> str:
    """``command`` up to its first unquoted ``|`` (the rest filters curl's output on screen)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars="|")
    lexer.whitespace_split = True
    lexer.commenters = ""
    for token in lexer:
        if token == "|":
            # shlex reads ahead at most the token after the pipe: cut at the pipe's position.
            return command[: command.rindex("|", 0, lexer.instream.tell())].rstrip()
    return command


def shell_words(command: str, env: dict[str, str]) -> list[str]:
    """``command``'s words after bash's expansion (quotes, ``$VAR``, comments), as the reader's shell."""
    command = _before_pipe(command)
    done = subprocess.run(
        ["bash", "-c", f'set -- {command.removeprefix("curl")}\nprintf "%s\\0" "$@"'],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return done.stdout.split("\0")[:-1]


def parse_curl(words: list[str]) -> dict:
    """The method, URL, headers and body of curl's arguments (the options the docs use)."""
    method, url, headers, data = None, None, {}, None
    i = 0
    while i < len(words):
        arg = words[i]
        if arg in ("-X", "--request"):
            method = words[i + 1]
            i += 2
        elif arg in ("-H", "--header"):
            name, _, value = words[i + 1].partition(":")
            headers[name.strip()] = value.strip()
            i += 2
        elif arg in ("-d", "--data", "--data-raw"):
            data = words[i + 1]
            i += 2
        elif arg in ("-s", "-S", "-i", "-sS", "--silent", "--fail"):
            i += 1
        elif arg.startswith("-"):
            raise AssertionError(f"the docs use a curl option this test does not know: {arg}")
        else:
            url = arg
            i += 1
    assert url, f"no URL in {words!r}"
    return {"method": method or ("POST" if data is not None else "GET"), "url": url, "headers": headers, "data": data}


def reader_env(**extra: str) -> dict[str, str]:
    """A reader's environment: the venv's commands first, none of the suite's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "TRAKKR_", "DATABASE_URL", "PYTEST"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


class Lines:
    """A process's output lines, read on a thread; :meth:`until` waits for a matching one."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self._queue: Queue[str] = Queue()
        threading.Thread(target=self._pump, args=(proc,), daemon=True).start()

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._queue.put(line.rstrip("\n"))

    def until(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except Empty:
                continue
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"no line matching {pattern!r} in {timeout} s; output:\n" + "\n".join(self.seen))


def _spawn(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """``args`` in a process group of its own (so :func:`_stop` stops all it starts), output as text lines."""
    return subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    """Stop ``proc`` and everything it started (its own process group): SIGTERM, then SIGKILL
    for what is left (a non-interactive shell's background jobs ignore SIGINT)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        time.sleep(1.0 if sig == signal.SIGTERM else 0)
    proc.wait(timeout=10)


# -- the README's files --------------------------------------------------------------------------


def test_the_readme_shows_the_example_files_as_they_are():
    text = README.read_text()
    shown = re.findall(r"<!-- docs/examples/([\w.]+) -->\n```\w+\n(.*?)```", text, flags=re.S)
    assert sorted(name for name, _ in shown) == ["myapp.py", "quickstart.sh", "receiver.py"]
    for name, body in shown:
        assert body == (EXAMPLES / name).read_text(), f"README's {name} differs from docs/examples/{name}"
    assert len(text.encode()) <= 12 * 1024, "the README is longer than 12 KB"


def test_the_quickstart_runs_as_written_to_a_verified_delivery(tmp_path, redis_url):
    for name in ("myapp.py", "receiver.py", "quickstart.sh"):
        (tmp_path / name).write_text((EXAMPLES / name).read_text())
    # A Redis database of its own: the quickstart's worker serves the default queue name.
    proc = _spawn(["bash", "quickstart.sh"], tmp_path, reader_env(REDIS_URL=redis_url.rsplit("/", 1)[0] + "/14"))
    try:
        lines = Lines(proc)
        event_id = lines.until(r'\{"event_id":\s*"(evt_[0-9a-f]{24})"\}', timeout=90).group(1)
        receipt = lines.until(r"^verified (evt_\S+) (.*)$", timeout=30)
        assert receipt.group(1) == event_id
        assert receipt.group(2) == "Acme's visibility rose 40.2% (41.0 → 57.5)"
    finally:
        _stop(proc)


# -- the docs' curl examples against the demo -----------------------------------------------------


@pytest.fixture
def demo(redis_url: str) -> Iterator[tuple[dict[str, str], list[str]]]:
    """``example_app.demo --keep-running``: the variables of its export line, and its output so far."""
    proc = _spawn(
        [sys.executable, "-m", "example_app.demo", "--keep-running"],
        ROOT,
        reader_env(REDIS_URL=redis_url, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1"),
    )
    try:
        lines = Lines(proc)
        export = lines.until(r"^\s*export (.*)$", timeout=120).group(1)
        variables = dict(word.split("=", 1) for word in shlex.split(export))
        yield variables, lines.seen
    finally:
        _stop(proc)


def _pages() -> list[Path]:
    pages = [DOCS / name for name in PAGE_ORDER]
    rest = sorted(p for p in DOCS.glob("*.md") if p.name not in PAGE_ORDER and curl_commands(p.read_text()))
    return pages + rest


def test_the_demo_prints_each_receipt_before_the_attempt_that_delivered_it(demo):
    _, output = demo
    succeeded = [i for i, line in enumerate(output) if line.startswith("attempt:") and line.endswith("succeeded")]
    assert len(succeeded) >= 10, output
    for i in succeeded:
        assert output[i - 1].startswith("receiver: verified"), "\n".join(output[i - 2 : i + 1])


def test_every_curl_example_of_the_docs_runs_against_the_demo(demo):
    variables, _ = demo
    assert set(variables) == {"API", "KEY", "WH", "DLV", "RX", "METRICS"}
    env = reader_env(**variables)
    commands = [c for page in _pages() for c in curl_commands(page.read_text())]
    deletes = [c for c in commands if re.search(r"-X\s+DELETE", c)]
    commands = [c for c in commands if c not in deletes] + deletes
    assert len(commands) >= 18
    session = requests.Session()
    for command in commands:
        if command in deletes:
            # Before the webhook goes: the demo's receiver still verifies it after the rotations.
            test = session.post(
                f"{variables['API']}/webhooks/{variables['WH']}/test",
                headers={"Authorization": f"Bearer {variables['KEY']}"},
                json={"event": "citation_gained"},  # report_completed crashes the demo receiver once
                timeout=15,
            )
            assert test.status_code == 200 and test.json()["success"] is True, test.text
        call = parse_curl(shell_words(command, env))
        response = session.request(
            call["method"],
            call["url"],
            headers=call["headers"],
            data=call["data"].encode() if call["data"] else None,
            timeout=15,
        )
        assert response.status_code < 400, f"{command}\n -> {response.status_code} {response.text}"
        if call["url"].startswith(variables["API"]):
            json.loads(response.text)  # every answer of the API is JSON
        else:  # the worker's metrics
            assert "trakkr_webhooks_attempts_total" in response.text
