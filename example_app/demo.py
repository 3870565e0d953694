"""The one-command demo: a host app, an RQ worker and a receiver, end to end.

    python3 dev.py demo [--keep-running]

It uses the machine's Redis when ``REDIS_URL`` answers, otherwise starts an embedded
one; a fresh SQLite database (or ``DATABASE_URL``); then it registers two webhooks
through the REST API (one signed with bearer auth, one with a template), makes each
of the five events happen, shows every delivery attempt and every verified receipt as
they happen, and ends with a summary table. Exit status 0 means every delivery arrived
and was verified. Every process it starts is stopped on exit or Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests

from flask_trakkr_webhooks.testing import EmbeddedRedis, free_port, redis_answers

ROOT = Path(__file__).resolve().parent.parent
KINDS = ["visibility", "report", "competitor", "citation-gained", "citation-lost"]
EVENT_TYPES = ["visibility_changed", "report_completed", "competitor_added", "citation_gained", "citation_lost"]
TEMPLATE = {
    "text": "{{brand.name}}: {{summary}}",
    "event": "{{event.type}}",
    "data": "{{event.data}}",
    # receiver_kit's idempotency reads meta.event_id, so the template carries it.
    "meta": {"event_id": "{{event.id}}"},
}


def say(line: str = "") -> None:
    """Print one line of demo output at once (children print concurrently)."""
    print(line, flush=True)


class Children:
    """Child processes in their own process groups, relaying chosen output lines."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.lines: queue.Queue[tuple[str, str]] = queue.Queue()

    def start(self, name: str, args: list[str], env: dict[str, str], relay: bool = False) -> subprocess.Popen:
        """Start ``args``; its output goes to ``<logdir>/<name>.log`` (and to the screen if ``relay``)."""
        log = open(self.logdir / f"{name}.log", "w")
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE if relay else log,
            stderr=log,
            text=True,
            start_new_session=True,  # we stop it ourselves, also on Ctrl-C
        )
        self.procs.append((name, proc))
        if relay:
            threading.Thread(target=self._pump, args=(name, proc), daemon=True).start()
        return proc

    def _pump(self, name: str, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.put((name, line.rstrip("\n")))

    def check_alive(self) -> None:
        """Raise if a child died: the demo cannot succeed without it."""
        for name, proc in self.procs:
            if proc.poll() is not None:
                log = (self.logdir / f"{name}.log").read_text(errors="replace").strip().splitlines()
                tail = "\n    ".join(log[-15:]) or "(no output)"
                raise RuntimeError(f"{name} exited with code {proc.returncode}; its last output:\n    {tail}")

    def stop_all(self) -> None:
        """SIGTERM every process group, then SIGKILL what is left after 5 s."""
        for _, proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for _, proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()


def wait_http(url: str, children: Children, timeout: float = 20.0) -> None:
    """Wait until ``url`` answers at all (any status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children.check_alive()
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def flask_cmd(*args: str) -> list[str]:
    """``python -m flask --app example_app ...`` with this interpreter."""
    return [sys.executable, "-m", "flask", "--app", "example_app", *args]


def api(session: requests.Session, method: str, url: str, **kwargs: Any) -> Any:
    """Call the REST API; raise with the API's error message on failure."""
    response = session.request(method, url, timeout=10, **kwargs)
    if response.status_code >= 400:
        raise RuntimeError(f"{method} {url} -> {response.status_code}: {response.text}")
    return response.json()


def run(args: argparse.Namespace) -> int:
    """Run the demo with the parsed ``args``; return the process exit status (0 when it worked)."""
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="trakkr-demo-"))
    keep_logs = [True]  # cleared on success; a failed run leaves its logs for reading
    with ExitStack() as stack:
        stack.callback(lambda: keep_logs[0] or shutil.rmtree(workdir, ignore_errors=True))
        children = Children(workdir)
        stack.callback(children.stop_all)

        redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        if redis_answers(redis_url):
            say(f"redis:    using {redis_url}")
        else:
            server = stack.enter_context(EmbeddedRedis())
            redis_url = server.url
            say(f"redis:    no Redis at REDIS_URL; started an embedded one at {redis_url}")

        host_port, receiver_port, metrics_port = free_port(), free_port(), free_port()
        # Standard Webhooks form: "whsec_" + base64 of 32 random bytes.
        signing_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        bearer = secrets.token_urlsafe(24)
        env = dict(
            os.environ,
            REDIS_URL=redis_url,
            DATABASE_URL=os.environ.get("DATABASE_URL") or f"sqlite:///{workdir / 'demo.db'}",
            EXAMPLE_LOCAL_RECEIVERS="1",
            TRAKKR_WEBHOOKS_QUEUE=f"demo-{secrets.token_hex(4)}",
            PYTHONUNBUFFERED="1",
        )
        if "TRAKKR_WEBHOOKS_ENCRYPTION_KEY" not in env:
            try:
                from cryptography.fernet import Fernet

                env["TRAKKR_WEBHOOKS_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
            except ImportError:  # the extension then runs without encryption at rest
                pass
        receiver_env = dict(
            env,
            RECEIVER_SIGNING_SECRET=signing_secret,
            RECEIVER_BEARER_TOKEN=bearer,
            RECEIVER_FAIL_ONCE="report_completed",
        )

        seeded = subprocess.run(flask_cmd("seed", "--json"), cwd=ROOT, env=env, capture_output=True, text=True)
        if seeded.returncode != 0:
            raise RuntimeError(f"seeding failed: {seeded.stderr}")
        brand = json.loads(seeded.stdout.strip().splitlines()[-1])[0]
        say(f"host:     brand {brand['name']} ({brand['id']}), API key {brand['api_key']}")
        # The receiver also accepts the current secret of each of the brand's webhooks, so it
        # keeps verifying after the docs' rotate-secret examples.
        receiver_env.update(
            RECEIVER_SECRETS_URL=f"http://127.0.0.1:{host_port}/webhooks", RECEIVER_API_KEY=brand["api_key"]
        )

        children.start(
            "receiver",
            [sys.executable, "-m", "example_app.receiver", "--port", str(receiver_port)],
            receiver_env,
            relay=True,
        )
        children.start("host", flask_cmd("run", "--port", str(host_port), "--no-reload"), env)
        children.start("worker", flask_cmd("webhooks", "worker", "--metrics-port", str(metrics_port)), env)
        base = f"http://127.0.0.1:{host_port}"
        receiver = f"http://127.0.0.1:{receiver_port}"
        wait_http(base + "/brands/me", children)
        wait_http(receiver + "/", children)
        say(f"host:     {base}   receiver: {receiver}   worker: flask webhooks worker (RQ, with scheduler)")

        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {brand['api_key']}"
        common = {
            "events": EVENT_TYPES,
            "brand_id": brand["id"],
            "auth_type": "bearer",
            "auth_token": bearer,
            "signing_secret": signing_secret,
        }
        hooks = {
            "signed": api(http, "POST", base + "/webhooks", json={"url": receiver + "/hooks/trakkr", **common}),
            "templated": api(
                http,
                "POST",
                base + "/webhooks",
                json={"url": receiver + "/hooks/templated", "template": TEMPLATE, **common},
            ),
        }
        for label, hook in hooks.items():
            say(f"webhook:  {hook['id']} ({label}) -> {hook['url']}")

        events = {}
        for kind in KINDS:
            event_id = api(http, "POST", f"{base}/simulate/{kind}")["event_id"]
            events[event_id] = kind
            say(f"emit:     {event_id} {kind}")

        expected = len(events) * len(hooks)
        receipts = 0
        seen_attempts: set[str] = set()
        final: dict[str, dict] = {}
        deadline = time.monotonic() + args.timeout
        # A receipt is printed just before the attempt that delivered it (the receiver answers
        # before the worker records the attempt), so the output reads in the order things happen.
        held: dict[tuple[str, str], str] = {}  # receipts whose attempt is not on record yet
        waiting: dict[tuple[str, str], str] = {}  # attempts whose receipt has not arrived yet
        while time.monotonic() < deadline:
            children.check_alive()
            while not children.lines.empty():
                name, line = children.lines.get()
                if line.startswith("receiver: verified"):
                    receipts += 1
                    parts = line.split()
                    key = (parts[2], "templated" if parts[3] == "templated" else "signed")
                    if key in waiting:  # its attempt was on record before this line arrived
                        say(line)
                        say(waiting.pop(key))
                    else:
                        held[key] = line
                    continue
                say(line)
            for label, hook in hooks.items():
                listing = api(http, "GET", f"{base}/webhooks/{hook['id']}/deliveries", params={"limit": 100})
                for item in listing["data"]:
                    if item["status"] in ("succeeded", "failed", "cancelled") or item.get("attempt_count"):
                        detail = api(http, "GET", f"{base}/webhooks/{hook['id']}/deliveries/{item['id']}")
                        for attempt in detail.get("attempts", []):
                            if attempt["id"] in seen_attempts:
                                continue
                            seen_attempts.add(attempt["id"])
                            outcome = attempt.get("status_code") or attempt.get("error_type")
                            text = (
                                f"attempt:  {item['id']} {label:<9} #{attempt['number']} -> {outcome} "
                                f"({attempt.get('duration_ms') or 0:.0f} ms) {attempt.get('outcome', '')}"
                            )
                            key = (item.get("event_id", ""), label)
                            if attempt.get("outcome") != "succeeded":
                                say(text)
                            elif key in held:
                                say(held.pop(key))
                                say(text)
                            else:  # the receipt line is still on its way from the receiver
                                waiting[key] = text
                        if item["status"] in ("succeeded", "failed", "cancelled"):
                            final[item["id"]] = dict(detail, hook=label)
            if len(final) >= expected and receipts >= expected and not waiting:
                break
            time.sleep(0.3)
        # Drain what the receiver printed last.
        time.sleep(0.2)
        for line in [*held.values(), *waiting.values()]:
            say(line)
        while not children.lines.empty():
            say(children.lines.get()[1])

        say()
        say(f"{'event':<20} {'webhook':<10} {'delivery':<28} {'status':<10} attempts")
        for item in sorted(final.values(), key=lambda d: (d.get("event_type", ""), d["hook"])):
            say(
                f"{item.get('event_type', '?'):<20} {item['hook']:<10} {item['id']:<28} {item['status']:<10} "
                f"{item.get('attempt_count', len(item.get('attempts', [])))}"
            )
        delivered = sum(1 for d in final.values() if d["status"] == "succeeded")
        ok = delivered == expected and receipts >= expected
        say()
        say(
            f"{delivered}/{expected} deliveries succeeded, {receipts} verified receipts, "
            f"{time.monotonic() - started:.1f}s" + ("" if ok else f"  -> FAILED; logs kept in {workdir}")
        )
        keep_logs[0] = not ok

        if args.keep_running and ok:
            say(f"\nrunning: host {base}  receiver {receiver}  redis {redis_url}")
            say(f"portal:  {base}/webhooks/portal  (sign in with the API key {brand['api_key']})")
            retried = next((d for d in final.values() if d["hook"] == "signed" and d.get("attempt_count", 1) > 1), None)
            dlv = (retried or next(d for d in final.values() if d["hook"] == "signed"))["id"]
            say("for the docs' curl examples (docs/rest-api.md and the pages it links), in another terminal:")
            say(
                f"  export API={base} KEY={brand['api_key']} WH={hooks['signed']['id']} DLV={dlv} RX={receiver}"
                f" METRICS=http://127.0.0.1:{metrics_port}/metrics"
            )
            say('  curl -s "$API/webhooks" -H "Authorization: Bearer $KEY"')
            say("Ctrl-C stops everything.")
            try:
                while True:
                    children.check_alive()
                    while not children.lines.empty():
                        say(children.lines.get()[1])
                    time.sleep(0.5)
            except KeyboardInterrupt:
                say("stopping")
        return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: parse ``argv`` and :func:`run` the demo."""
    parser = argparse.ArgumentParser(description="Run the flask-trakkr-webhooks demo end to end.")
    parser.add_argument("--keep-running", action="store_true", help="leave everything up; Ctrl-C stops it")
    parser.add_argument("--timeout", type=float, default=45.0, help="seconds to wait for deliveries")
    args = parser.parse_args(argv)

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # unwinds through the ExitStack, which stops every child

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return run(args)
    except KeyboardInterrupt:
        say("\ninterrupted; stopped every process")
        return 130
    except RuntimeError as exc:
        say(f"demo failed: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
