"""Fixtures of the end-to-end tests: a scripted receiver, the app, worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from e2e.hostapp import env_for
from e2e.receiver import TIMEOUT_SCALE, Receiver

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"

#: Settings of every end-to-end app: receivers are on 127.0.0.1 over plain HTTP.
E2E_CONFIG = dict(
    TRAKKR_WEBHOOKS_REQUIRE_HTTPS=False,
    TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=True,
    TRAKKR_WEBHOOKS_TIMEOUT=1,
    TRAKKR_WEBHOOKS_SWEEP_INTERVAL=0.5,
    TRAKKR_WEBHOOKS_STUCK_AFTER=3,
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver checking the signature ``whsec_e2e`` and ``Authorization: Bearer tok_e2e``."""
    with Receiver(secret="whsec_e2e", auth=("Authorization", "Bearer tok_e2e")) as rx:
        yield rx


@pytest.fixture
def e2e_app(make_app: Callable[..., Flask]) -> Callable[..., Flask]:
    """``e2e_app(**config)``: an app with the end-to-end settings (plus ``config``)."""

    def factory(**config: Any) -> Flask:
        return make_app(**{**E2E_CONFIG, **config})

    return factory


class WorkerProcess:
    """``flask webhooks worker`` for an app, in its own process group.

    ``host``: the app factory the worker runs; ``env``: more environment variables for it.
    """

    def __init__(
        self,
        app: Flask,
        log_path: Path,
        *args: str,
        host: str = "e2e.hostapp:create_app",
        env: dict[str, str] | None = None,
    ) -> None:
        env = dict(
            os.environ,
            **env_for(app),
            PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS)]),
            PYTHONUNBUFFERED="1",
            **(env or {}),
        )
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", host, "webhooks", *args],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (worker, scheduler, work horse)."""
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (warm shutdown), then SIGKILL if it does not exit in time."""
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill(signal.SIGKILL)  # also any scheduler child left behind
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        self._log.close()

    def output(self) -> str:
        """Everything the worker printed so far."""
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """``start_worker(app, *args, host=..., env=...)`` starts ``flask webhooks worker`` (default) or another
    command; every process is killed in teardown."""
    started: list[WorkerProcess] = []

    def start(app: Flask, *args: str, **kwargs: Any) -> WorkerProcess:
        worker = WorkerProcess(app, tmp_path / f"worker-{len(started)}.log", *(args or ("worker",)), **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
        # Shown by pytest when the test failed.
        print(f"--- {worker.log_path.name} ---\n{worker.output()[-4000:]}")


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; ``AssertionError`` naming ``what`` on timeout."""
    timeout *= TIMEOUT_SCALE
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
