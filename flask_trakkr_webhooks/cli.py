"""The ``flask webhooks`` command group: ``worker`` and ``dispatch``."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

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
    from .worker import run_worker

    run_worker(current_app._get_current_object(), burst=burst, name=name)


@webhooks_cli.command("dispatch")
def dispatch_command() -> None:
    """Enqueue every delivery left pending (e.g. after a Redis outage), lost or stuck.

    Pending deliveries are enqueued whatever their age; lost jobs, deliveries stuck in
    `sending` for TRAKKR_WEBHOOKS_STUCK_AFTER seconds and overdue retries too.
    Enqueueing is idempotent: a delivery already in the queue is left alone.
    """
    from . import dispatch
    from .extension import get_state

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
