"""The ``flask webhooks`` command group: worker, dispatch, generate-key, rotate-key, db and prune."""

from __future__ import annotations

import json
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click
import redis.exceptions
import sqlalchemy.exc
from flask import Flask, current_app
from flask.cli import AppGroup, NoAppException, ScriptInfo

from . import crypto, dispatch, duration, migrate, retention, status
from .errors import ConfigError, NotInitialisedError
from .progress import Progress
from .state import get_state
from .worker import run_worker


def _redis_url(app: Flask | None) -> str:
    """``app``'s Redis URL with any password masked, or the setting's name."""
    url = app.config.get("TRAKKR_WEBHOOKS_REDIS_URL") if app is not None else None
    if not isinstance(url, str):
        return "TRAKKR_WEBHOOKS_REDIS_URL"
    parts = urlsplit(url)
    if parts.password:
        host = parts.netloc.rsplit("@", 1)[-1]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    return urlunsplit(parts)


def explain(exc: BaseException, app: Flask | None = None) -> str | None:
    """One line saying what is missing and how to fix it, for the failures a setup meets
    (no app, no Redis, no database, no key, a bad setting); ``None`` for anything else."""
    if isinstance(exc, NoAppException):
        return f"{exc.format_message()} Name the app with --app or FLASK_APP, e.g. `flask --app myapp webhooks worker`."
    if isinstance(exc, (NotInitialisedError, ConfigError, crypto.EncryptionKeyError)):
        return str(exc)
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return f"cannot reach Redis at {_redis_url(app)} ({exc}): start Redis or set TRAKKR_WEBHOOKS_REDIS_URL."
    if isinstance(
        exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.ProgrammingError)
    ):
        reason = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]
        if "no such table" in reason or "does not exist" in reason:
            return (
                f"the webhook tables are missing ({reason}): run `flask webhooks db upgrade` "
                "(or db.create_all(), or your own Alembic migrations)."
            )
        return f"cannot use the database ({reason}): check SQLALCHEMY_DATABASE_URI and that the database is up."
    if isinstance(exc, RuntimeError) and "SQLALCHEMY_DATABASE_URI" in str(exc):
        return f"{exc} e.g. app.config['SQLALCHEMY_DATABASE_URI'] = 'sqlite:///app.db'."
    return None


class WebhooksGroup(AppGroup):
    """The command group: a setup problem (no app, Redis, database or key) ends the command
    with one line naming the fix and exit status 1, not a traceback (``--verbose`` shows it)."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand, turning a setup failure into one line (see the class)."""
        try:
            return super().invoke(ctx)
        except NoAppException as exc:  # a usage error to click; one line here like the rest
            if ctx.params.get("verbose"):
                raise
            raise click.ClickException(str(explain(exc))) from None
        except click.exceptions.ClickException:
            raise
        except Exception as exc:
            # The app context is gone by now; the app Flask's CLI loaded is still known.
            app = getattr(ctx.find_object(ScriptInfo), "_loaded_app", None)
            problem = explain(exc, app)
            if problem is None or ctx.params.get("verbose"):
                raise
            raise click.ClickException(problem) from None


#: ``flask --app HOST webhooks ...``. Also a ``flask.commands`` plugin, so that commands
#: that need no app (``generate-key``) run even when the app cannot load yet.
webhooks_cli = WebhooksGroup(
    "webhooks",
    help="Deliver and inspect webhooks (flask-trakkr-webhooks).",
    params=[click.Option(["-v", "--verbose"], is_flag=True, help="Show the traceback of a failure.")],
)


@webhooks_cli.command("worker")
@click.option("--burst", is_flag=True, help="Quit when the queue is empty (scheduled retries stay for later).")
@click.option("--name", default=None, help="Worker name (default: RQ's random name).")
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve Prometheus metrics at http://TRAKKR_WEBHOOKS_METRICS_ADDRESS:PORT/metrics "
    "(default: TRAKKR_WEBHOOKS_METRICS_PORT; none: not served).",
)
def worker_command(burst: bool, name: str | None, metrics_port: int | None) -> None:
    """Run an RQ worker with its scheduler on the webhooks queue, in this app's context.

    Deliveries of a job are sent concurrently (TRAKKR_WEBHOOKS_CONCURRENCY threads,
    TRAKKR_WEBHOOKS_PER_HOST_CONCURRENCY per host); forgotten deliveries are swept
    every TRAKKR_WEBHOOKS_SWEEP_INTERVAL seconds.
    """
    run_worker(current_app._get_current_object(), burst=burst, name=name, metrics_port=metrics_port)  # type: ignore[attr-defined]  # werkzeug LocalProxy


@webhooks_cli.command("dispatch")
def dispatch_command() -> None:
    """Enqueue every delivery left pending (e.g. after a Redis outage), lost or stuck.

    Pending deliveries are enqueued whatever their age; lost jobs, deliveries stuck in
    `sending` for TRAKKR_WEBHOOKS_STUCK_AFTER seconds and overdue retries too.
    Enqueueing is idempotent: a delivery already in the queue is left alone.
    """
    state = get_state()
    try:
        result = dispatch.sweep_all(state, pending_grace=0)
    except Exception as exc:
        if explain(exc) is not None:
            raise  # a setup problem: the group says it in one line
        raise click.ClickException(f"could not dispatch: {type(exc).__name__}: {exc}") from None
    counts = result.as_dict()
    click.echo(
        f"enqueued {counts['enqueued']} deliveries "
        f"(pending {counts['pending']}, lost jobs {counts['lost_jobs']}, stuck {counts['stuck']}, "
        f"overdue retries {counts['overdue_retries']})"
    )


@webhooks_cli.command("generate-key", with_appcontext=False)
def generate_key_command() -> None:
    """Print a new Fernet key for TRAKKR_WEBHOOKS_ENCRYPTION_KEY (nothing is stored).

    To rotate: put the new key first (TRAKKR_WEBHOOKS_ENCRYPTION_KEY="NEW,OLD"), deploy,
    run `flask webhooks rotate-key`, then remove the old key.
    """
    click.echo(crypto.generate_key())


@webhooks_cli.command("rotate-key")
def rotate_key_command() -> None:
    """Re-encrypt every stored credential with the first key of TRAKKR_WEBHOOKS_ENCRYPTION_KEY.

    Values under an older key (still listed after the first) or stored unencrypted are
    re-encrypted; values already under the first key are left alone. One transaction:
    on any error nothing changes. Prints the count per column.
    """
    state = get_state()
    try:
        counts = crypto.rotate(
            state.db.session, state.models, progress=lambda table, rows: Progress(f"{table}: re-encrypting", rows)
        )
    except (RuntimeError, ValueError) as exc:  # no key, or a value under a key no longer configured
        state.db.session.rollback()
        raise click.ClickException(str(exc)) from None
    for column, count in counts.items():
        click.echo(f"{column}: {count} re-encrypted")
    click.echo(f"re-encrypted {sum(counts.values())} values with the first key")


@webhooks_cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def status_command(as_json: bool) -> None:
    """Report the backlog, the oldest waiting delivery, live workers, disabled and failing
    webhooks and the success rate of the last 5 minutes; exit 0 when healthy, 1 when not.

    The thresholds are TRAKKR_WEBHOOKS_STATUS_* (docs/operations.md). A database error
    exits 1 too, saying so.
    """
    try:
        report = status.check(get_state())
    except Exception as exc:
        if as_json:
            click.echo(json.dumps({"healthy": False, "problems": [f"cannot read the database: {type(exc).__name__}"]}))
        else:
            click.echo(f"webhooks: UNHEALTHY\n  problem: cannot read the database: {type(exc).__name__}: {exc}")
        sys.exit(1)
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else status.render(report))
    sys.exit(0 if report.healthy else 1)


@webhooks_cli.group("db")
def db_group() -> None:
    """The extension's tables, for hosts without Alembic (with Alembic: docs/upgrading.md)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade_command(revision: str) -> None:
    """Upgrade the webhook tables to REVISION (default: the newest), in one transaction.

    Tables made by db.create_all() before migrations shipped are recognised and their
    revision recorded first; nothing is created twice.
    """
    try:
        result = migrate.upgrade(get_state(), revision)
    except Exception as exc:
        raise click.ClickException(f"could not upgrade: {type(exc).__name__}: {exc}") from None
    if result["adopted"]:
        click.echo(f"existing tables recognised as revision {result['adopted']}")
    click.echo(f"webhook tables: {result['before'] or 'none'} -> {result['after']}")


@db_group.command("downgrade")
@click.argument("revision")
def db_downgrade_command(revision: str) -> None:
    """Downgrade the webhook tables to REVISION (`base` drops them with every row)."""
    try:
        result = migrate.downgrade(get_state(), revision)
    except Exception as exc:
        raise click.ClickException(f"could not downgrade: {type(exc).__name__}: {exc}") from None
    click.echo(f"webhook tables: {result['before'] or 'none'} -> {result['after'] or 'none'}")


@db_group.command("current")
def db_current_command() -> None:
    """Print the revision of the webhook tables and the newest one."""
    state = get_state()
    with state.db.engine.connect() as connection:
        found = migrate.current(connection)
    click.echo(f"current: {found or 'none'}; head: {migrate.head()}")


def _duration_option(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return duration.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _summary(counts: retention.PruneCounts, dry_run: bool) -> str:
    deleted, dropped = ("would delete", "would drop") if dry_run else ("deleted", "dropped")
    return (
        f"{deleted} {counts.deliveries} deliveries, {counts.attempts} attempts, {counts.events} events; "
        f"{dropped} {counts.bodies} response bodies"
    )


@webhooks_cli.command("prune")
@click.option(
    "--older-than",
    callback=_duration_option,
    metavar="DURATION",
    help="Prune what finished (and bodies older than) this long ago, e.g. 90d, 12h (default: the settings).",
)
@click.option("--dry-run", is_flag=True, help="Count what would go; change nothing.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Rows per transaction.")
@click.option(
    "--pause",
    type=click.FloatRange(min=0),
    default=None,
    metavar="RATIO",
    help="Pause after each batch, in multiples of its time (default: TRAKKR_WEBHOOKS_PRUNE_PAUSE).",
)
def prune_command(older_than: float | None, dry_run: bool, batch_size: int | None, pause: float | None) -> None:
    """Delete finished deliveries, their attempts and events past TRAKKR_WEBHOOKS_RETENTION, and drop
    response bodies past TRAKKR_WEBHOOKS_BODY_RETENTION, in batches. Open deliveries are never deleted."""
    state = get_state()
    cutoffs = retention.Cutoffs.of(state, older_than)
    if cutoffs.rows is None and cutoffs.bodies is None:
        click.echo("nothing to prune: TRAKKR_WEBHOOKS_RETENTION and BODY_RETENTION are None (kept for ever)")
        return
    for what, moment in (("rows finished", cutoffs.rows), ("response bodies", cutoffs.bodies)):
        if moment is not None:
            click.echo(f"{what} before {moment.isoformat(timespec='seconds')}")
    try:
        planned = retention.plan(state, cutoffs)
        if dry_run:
            click.echo(_summary(planned, dry_run=True))
            return
        with click.progressbar(length=planned.rows, label="pruning", file=sys.stderr) as bar:

            def advance(step: str, rows: int) -> None:
                bar.update(rows)

            done = retention.prune(state, cutoffs, batch_size=batch_size, pause=pause, progress=advance)
    except Exception as exc:
        raise click.ClickException(f"could not prune: {type(exc).__name__}: {exc}") from None
    click.echo(_summary(done, dry_run=False))
