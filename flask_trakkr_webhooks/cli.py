"""The ``flask webhooks`` command group: worker, dispatch, generate-key, rotate-key, db and prune."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup

from . import crypto, dispatch, duration, migrate, retention
from .state import get_state
from .worker import run_worker

#: ``flask --app HOST webhooks ...``
webhooks_cli = AppGroup("webhooks", help="Deliver and inspect webhooks (flask-trakkr-webhooks).")


@webhooks_cli.command("worker")
@click.option("--burst", is_flag=True, help="Quit when the queue is empty (scheduled retries stay for later).")
@click.option("--name", default=None, help="Worker name (default: RQ's random name).")
def worker_command(burst: bool, name: str | None) -> None:
    """Run an RQ worker with its scheduler on the webhooks queue, in this app's context.

    Deliveries of a job are sent concurrently (TRAKKR_WEBHOOKS_CONCURRENCY threads,
    TRAKKR_WEBHOOKS_PER_HOST_CONCURRENCY per host); forgotten deliveries are swept
    every TRAKKR_WEBHOOKS_SWEEP_INTERVAL seconds.
    """
    run_worker(current_app._get_current_object(), burst=burst, name=name)  # type: ignore[attr-defined]  # werkzeug LocalProxy


@webhooks_cli.command("dispatch")
def dispatch_command() -> None:
    """Enqueue every delivery left pending (e.g. after a Redis outage), lost or stuck.

    Pending deliveries are enqueued whatever their age; lost jobs, deliveries stuck in
    `sending` for TRAKKR_WEBHOOKS_STUCK_AFTER seconds and overdue retries too.
    Enqueueing is idempotent: a delivery already in the queue is left alone.
    """
    state = get_state()
    try:
        result = dispatch.sweep(state, pending_grace=0)
    except Exception as exc:
        raise click.ClickException(f"could not dispatch: {type(exc).__name__}: {exc}") from None
    counts = result.as_dict()
    click.echo(
        f"enqueued {counts['enqueued']} deliveries "
        f"(pending {counts['pending']}, lost jobs {counts['lost_jobs']}, stuck {counts['stuck']}, "
        f"overdue retries {counts['overdue_retries']})"
    )


@webhooks_cli.command("generate-key")
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
        counts = crypto.rotate(state.db.session, state.models)
    except (RuntimeError, ValueError) as exc:  # no key, or a value under a key no longer configured
        state.db.session.rollback()
        raise click.ClickException(str(exc)) from None
    for column, count in counts.items():
        click.echo(f"{column}: {count} re-encrypted")
    click.echo(f"re-encrypted {sum(counts.values())} values with the first key")


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
def prune_command(older_than: float | None, dry_run: bool, batch_size: int | None) -> None:
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

            done = retention.prune(state, cutoffs, batch_size=batch_size, progress=advance)
    except Exception as exc:
        raise click.ClickException(f"could not prune: {type(exc).__name__}: {exc}") from None
    click.echo(_summary(done, dry_run=False))
