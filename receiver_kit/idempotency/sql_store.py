"""Idempotency keys in a SQL table (SQLAlchemy Core): SQLite, PostgreSQL and others.

One row per key (the primary key makes a second claim impossible), with
``state``, the claim ``token`` and ``expires_at`` (Unix seconds, this host's
clock; hosts sharing the table should run NTP, which keeps skew far below any
sensible TTL). Importing this module imports SQLAlchemy; ``receiver_kit.idempotency``
only does so when ``SQLStore`` is first used.

Claiming is race-free without locks held across the handler:

1. ``INSERT … ON CONFLICT DO NOTHING`` (SQLite, PostgreSQL; a savepoint and the
   unique violation elsewhere): exactly one concurrent inserter wins.
2. Otherwise a take-over of an expired claim: ``UPDATE … SET token=:new,
   expires_at=… WHERE key=:key AND expires_at <= :now``. The database re-checks
   the ``WHERE`` on the row it locks (PostgreSQL re-evaluates it after a
   concurrent update commits; SQLite serialises writers), so at most one
   taker's ``UPDATE`` matches.
3. Otherwise the current ``state`` is read and returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .base import ACQUIRED, COMPLETED, DEFAULT_COMPLETED_TTL, DEFAULT_PROCESSING_TTL, PROCESSING, Claim, TTLs, new_token

DEFAULT_TABLE_NAME = "receiver_kit_idempotency"
KEY_LENGTH = 255


def _insert_or_nothing(conn: Connection, table: sa.Table, values: dict[str, Any]) -> bool:
    """Insert ``values`` unless the key exists; True if this call inserted the row."""
    dialect = conn.dialect.name
    if dialect in ("postgresql", "sqlite"):
        # Two dialect-specific Insert classes with the same on_conflict_do_nothing().
        stmt: Any
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            stmt = postgresql_insert(table).values(**values).on_conflict_do_nothing()
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(table).values(**values).on_conflict_do_nothing()
        # RETURNING, not rowcount: some drivers report -1 for INSERT … ON CONFLICT.
        if conn.dialect.insert_returning:
            return conn.execute(stmt.returning(table.c.idempotency_key)).first() is not None
        return conn.execute(stmt).rowcount == 1
    try:
        with conn.begin_nested():  # a failed INSERT must not poison the outer transaction
            conn.execute(table.insert().values(**values))
        return True
    except sa.exc.IntegrityError:
        return False


def _is_memory_sqlite(url: sa.engine.URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


class SQLStore(TTLs):
    """Idempotency store in table ``table_name`` of ``engine_or_url`` (an ``Engine`` or a URL string).

    Call :meth:`create_table` once (or add :attr:`table` to your migrations:
    pass your own ``metadata``). Call :meth:`purge_expired` from a periodic job
    to delete old rows. In-memory SQLite is refused: each thread would see its
    own empty database.
    """

    def __init__(
        self,
        engine_or_url: Engine | str,
        table_name: str = DEFAULT_TABLE_NAME,
        processing_ttl: float = DEFAULT_PROCESSING_TTL,
        completed_ttl: float = DEFAULT_COMPLETED_TTL,
        *,
        metadata: sa.MetaData | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        url = sa.engine.make_url(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url.url
        if _is_memory_sqlite(url):
            raise ValueError(
                "SQLStore needs a database every thread and process shares: use a SQLite file "
                "(sqlite:///path.db), PostgreSQL, or MemoryStore for a single process"
            )
        self.engine: Engine = sa.create_engine(url) if isinstance(engine_or_url, str) else engine_or_url
        super().__init__(processing_ttl, completed_ttl)
        self._clock = clock
        self.table = sa.Table(
            table_name,
            metadata if metadata is not None else sa.MetaData(),
            sa.Column("idempotency_key", sa.String(KEY_LENGTH), primary_key=True),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("token", sa.String(64), nullable=False),
            sa.Column("expires_at", sa.Double(), nullable=False, index=True),
        )

    def create_table(self) -> None:
        """Create the table (and its index) if it does not exist yet; safe to run from many
        processes at once (every one returns with the table there).

        PostgreSQL: the check and the ``CREATE`` run in one transaction holding an advisory
        lock named after the table, so concurrent callers take turns; without it two
        ``CREATE TABLE`` race on the catalog and the loser fails with a unique violation on
        ``pg_type_typname_nsp_index`` (``IF NOT EXISTS`` does not prevent that). Elsewhere, a
        ``CREATE`` that fails because another process created the table meanwhile is ignored.
        """
        try:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    name = f"receiver_kit:{self.table.schema or ''}.{self.table.name}"
                    # Transaction-level: released at commit or rollback, never left behind.
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
                self.table.create(conn, checkfirst=True)
        except sa.exc.DBAPIError:
            if not self._table_exists():
                raise

    def _table_exists(self) -> bool:
        """True when the table and its ``expires_at`` index exist (another process made them)."""
        inspector = sa.inspect(self.engine)
        if not inspector.has_table(self.table.name, schema=self.table.schema):
            return False
        wanted = {index.name for index in self.table.indexes}
        present = {index["name"] for index in inspector.get_indexes(self.table.name, schema=self.table.schema)}
        return wanted <= present

    def claim(self, key: str, *, processing_ttl: float | None = None) -> Claim:
        """Insert a processing claim, or take over an expired one, or report the current state."""
        ttl = self.processing_ttl_for(processing_ttl)
        t = self.table
        # A row released between our INSERT and SELECT is gone: try again, a few times at most.
        for _ in range(5):
            token, now = new_token(), self._clock()
            with self.engine.begin() as conn:
                values = {"idempotency_key": key, "state": PROCESSING, "token": token, "expires_at": now + ttl}
                if _insert_or_nothing(conn, t, values):
                    return Claim(ACQUIRED, token)
                took_over = conn.execute(
                    t.update()
                    .where(t.c.idempotency_key == key, t.c.expires_at <= now)
                    .values(state=PROCESSING, token=token, expires_at=now + ttl)
                )
                if took_over.rowcount == 1:
                    return Claim(ACQUIRED, token)
                state = conn.execute(sa.select(t.c.state).where(t.c.idempotency_key == key)).scalar()
            if state is not None:
                return Claim(COMPLETED if state == COMPLETED else PROCESSING)
        return Claim(PROCESSING)  # keys churning that fast: let the sender retry

    def complete(self, key: str, token: str, *, completed_ttl: float | None = None) -> bool:
        """Mark ``key`` completed unless another claim owns it now."""
        ttl = self.completed_ttl_for(completed_ttl)
        t = self.table
        expires_at = self._clock() + ttl
        with self.engine.begin() as conn:
            done = conn.execute(
                t.update()
                .where(t.c.idempotency_key == key, t.c.token == token)
                .values(state=COMPLETED, expires_at=expires_at)
            )
            if done.rowcount == 1:
                return True
            # Our claim's row is gone (released by a take-over that failed): the work is done, record it.
            values = {"idempotency_key": key, "state": COMPLETED, "token": token, "expires_at": expires_at}
            return _insert_or_nothing(conn, t, values)

    def release(self, key: str, token: str) -> bool:
        """Delete ``key`` if our claim still holds it in ``processing``."""
        t = self.table
        with self.engine.begin() as conn:
            gone = conn.execute(
                t.delete().where(t.c.idempotency_key == key, t.c.token == token, t.c.state == PROCESSING)
            )
            return gone.rowcount == 1

    def state(self, key: str) -> str | None:
        """``"processing"``, ``"completed"`` or ``None`` (unknown or expired): for tests and debugging."""
        t = self.table
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.c.state).where(t.c.idempotency_key == key, t.c.expires_at > self._clock())
            ).first()
        return row.state if row else None

    def purge_expired(self) -> int:
        """Delete every expired row; the number deleted."""
        t = self.table
        with self.engine.begin() as conn:
            return conn.execute(t.delete().where(t.c.expires_at <= self._clock())).rowcount
