"""The ``trakkr-receiver-kit`` distribution: built from ``./receiver_kit``, no required dependencies.

The wheel is built from a copy of the folder (the checkout stays clean) and installed
with ``--no-index`` into a virtual environment that has nothing else, not even pip:
a single required dependency would make that install fail. The kit must then import
and verify a delivery with the standard library alone.
"""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import receiver_kit

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "receiver_kit"
SENDER_ONLY = ("flask", "sqlalchemy", "rq", "redis", "requests", "django", "starlette", "fastapi")

pytestmark = [pytest.mark.packaging, pytest.mark.slow]

SMOKE = """
import importlib.metadata, importlib.util, json, sys
import receiver_kit, receiver_kit.idempotency, receiver_kit.testing, receiver_kit.endpoint
from receiver_kit import WebhookVerifier
from receiver_kit.endpoint import Idempotency
from receiver_kit.idempotency import MemoryStore
from receiver_kit.testing import sample_payload, signed_request

req = signed_request(sample_payload(), "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0")
payload = WebhookVerifier("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0").verify(req.body, req.headers)
once = Idempotency(MemoryStore())
runs = [once.run(payload, lambda: 200, int, lambda reply: reply.status) for _ in range(2)]
try:
    import receiver_kit.flask
    flask_error = None
except ImportError as exc:
    flask_error = exc.name
third_party = sorted(
    name for name in sys.modules
    if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] not in ("receiver_kit", "__main__")
)
print(json.dumps({
    "file": receiver_kit.__file__,
    "version": receiver_kit.__version__,
    "distributions": sorted(d.metadata["Name"] for d in importlib.metadata.distributions()),
    "present": [m for m in ARGS if importlib.util.find_spec(m) is not None],
    "runs": runs,
    "flask_error": flask_error,
    "third_party_modules": third_party,
}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel ./receiver_kit`` run from a copy of the repository layout; the wheel's path."""
    work = tmp_path_factory.mktemp("kit-build")
    shutil.copytree(KIT, work / "receiver_kit", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = work / "dist"
    # Build isolation fetches setuptools through pip's configured index when the local one cannot build.
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q"]
    subprocess.run([*command, "./receiver_kit", "-w", str(out)], cwd=work, check=True, timeout=300)
    (built,) = out.glob("trakkr_receiver_kit-*.whl")
    return built


def test_wheel_holds_the_package_and_requires_nothing(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert wheel.name == f"trakkr_receiver_kit-{receiver_kit.__version__}-py3-none-any.whl"
    package = {n for n in names if not n.startswith("trakkr_receiver_kit-")}
    assert all(n.startswith("receiver_kit/") for n in package), package
    for needed in (
        "receiver_kit/__init__.py",
        "receiver_kit/py.typed",
        "receiver_kit/idempotency/async_redis_store.py",
        "receiver_kit/django/migrations/0001_initial.py",
        "receiver_kit/fastapi.py",
    ):
        assert needed in package
    assert not {"receiver_kit/pyproject.toml", "receiver_kit/setup.cfg", "receiver_kit/README.md"} & package
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert requires and all("extra ==" in line for line in requires), requires  # extras only
    extras = {line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Provides-Extra:")}
    assert extras == {"flask", "django", "fastapi", "redis", "sql"}


def test_installs_alone_into_an_empty_venv_and_works_with_the_standard_library(wheel: Path, tmp_path: Path) -> None:
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    # --no-index: any required dependency would have to come from an index, so the install would fail.
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "--no-cache-dir"]
    subprocess.run([*install, "--disable-pip-version-check", "-q", str(wheel)], check=True, timeout=120)
    script = SMOKE.replace("ARGS", repr(SENDER_ONLY))
    done = subprocess.run([str(python), "-I", "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["distributions"] == ["trakkr-receiver-kit"]
    assert report["present"] == []
    assert report["file"].startswith(str(env))
    assert report["version"] == receiver_kit.__version__
    assert report["runs"] == [200, 200]
    assert report["flask_error"] == "flask"
    assert report["third_party_modules"] == []


def test_sender_depends_on_the_kit_by_name_at_the_same_version_and_does_not_ship_it() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    requires = [line.strip() for line in cfg["options"]["install_requires"].splitlines() if line.strip()]
    requires = [line for line in requires if not line.startswith("#")]
    assert f"trakkr-receiver-kit=={receiver_kit.__version__}" in requires
    assert cfg["metadata"]["version"] == "attr: receiver_kit._version.__version__"
    shipped = cfg["options.packages.find"]["include"].split()
    assert not [name for name in shipped if name.startswith("receiver_kit")]
    assert "receiver_kit" not in cfg["options.package_data"]
