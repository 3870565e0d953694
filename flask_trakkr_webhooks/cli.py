"""The ``flask webhooks`` command group: ``worker``, ``dispatch``, ``generate-key`` and ``rotate-key``."""

from __future__ import annotations

import json
import sys

import click
from flask import current_app
from flask.cli import AppGroup

from . import crypto, dispatch, status
from .progress import Progress
from .state import get_state
from .worker import run_worker

#: ``flask --app HOST webhooks ...``
webhooks_cli = AppGroup("webhooks", help="Deliver and inspect webhooks (flask-trakkr-webhooks).")


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
