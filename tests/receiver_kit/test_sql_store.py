"""``SQLStore.create_table()`` run by several processes at once on PostgreSQL: every one succeeds.

Without a lock two ``CREATE TABLE`` race on PostgreSQL's catalog and the losers fail with a
unique violation on ``pg_type_typname_nsp_index``. Real processes, a real server (the one
``DATABASE_URL`` names, else 127.0.0.1:5432 database ``test``), a table name of this test's own.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

sa = pytest.importorskip("sqlalchemy")

PROCESSES = 4
ROUNDS = 2

#: Each process connects, says it is ready, waits for "go", then creates the same table.
CHILD = """
import os, sys, time
from receiver_kit.idempotency import SQLStore
url, table, where = sys.argv[1], sys.argv[2], sys.argv[3]
store = SQLStore(url, table_name=table)
with store.engine.connect():  # connect first, so the processes meet at the CREATE
    pass
open(os.path.join(where, "ready-" + str(os.getpid())), "w").close()
while not os.path.exists(os.path.join(where, "go")):
    time.sleep(0.001)
{call}
print("created")
"""


def _url() -> str:
    url = os.environ.get("DATABASE_URL") or "postgresql://127.0.0.1:5432/test"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
    return url


@pytest.fixture
def pg_url() -> str:
    url = _url()
    if not url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL")
    try:
        engine = sa.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # no server here: nothing to race on
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    return url


def _race(url: str, table: str, call: str, where: Path) -> list[subprocess.CompletedProcess[str]]:
    where.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD.format(call=call), url, table, str(where)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    deadline = time.monotonic() + 120
    while len(list(where.glob("ready-*"))) < PROCESSES and time.monotonic() < deadline:
        if any(proc.poll() is not None for proc in procs):
            break  # one failed before it was ready: collect its error below
        time.sleep(0.01)
    (where / "go").touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def _drop(url: str, table: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
    engine.dispose()


@pytest.mark.slow
def test_create_table_from_four_processes_at_once_succeeds_in_every_one(pg_url: str, tmp_path: Path) -> None:
    for round in range(ROUNDS):
        table = f"rk_race_{secrets.token_hex(4)}"
        try:
            results = _race(pg_url, table, "store.create_table()", tmp_path / str(round))
            failures = [r.stderr[-2000:] for r in results if r.returncode != 0 or "created" not in r.stdout]
            assert failures == []
            inspector = sa.inspect(sa.create_engine(pg_url))
            assert inspector.has_table(table)
            assert [i["column_names"] for i in inspector.get_indexes(table)] == [["expires_at"]]
        finally:
            _drop(pg_url, table)


@pytest.mark.slow
def test_the_race_is_real_without_the_lock(pg_url: str, tmp_path: Path) -> None:
    """The old ``table.create(engine, checkfirst=True)`` fails in some processes: the test above can fail."""
    failed = 0
    for round in range(ROUNDS):
        table = f"rk_race_{secrets.token_hex(4)}"
        try:
            results = _race(pg_url, table, "store.table.create(store.engine, checkfirst=True)", tmp_path / str(round))
            failed += sum(1 for r in results if r.returncode != 0)
        finally:
            _drop(pg_url, table)
    assert failed > 0
