"""Operator commands for the outbox: ``flask outbox ...`` and ``flask outbox-worker``."""
from __future__ import annotations

import json

import click

from ..extensions import db
from . import service, worker


def register(app) -> None:
    @app.cli.command("outbox-worker")
    @click.option("--burst", is_flag=True, help="Deliver what is due, then exit.")
    @click.option("--name", default=None, help="RQ worker name (default: host and pid).")
    def outbox_worker(burst, name):
        """Run a delivery worker (RQ on Redis with OUTBOX_WORKER=rq; else deliver in this process)."""
        if worker.mode(app) == "rq":
            click.echo(f"outbox: RQ worker on queue {app.config['OUTBOX_QUEUE']} ({'burst' if burst else 'until stopped'})")
            worker.run_rq_worker(app, burst=burst, name=name)
            return
        result = service.work_once()
        click.echo(f"delivered {result.delivered}, retrying {result.retried}, parked {result.parked}, "
                   f"events relayed {result.pumped}")
        if not burst:
            click.echo("OUTBOX_WORKER is not rq: the web workers deliver in-process; run with --burst for one pass")

    @app.cli.group("outbox")
    def outbox():
        """Messages to LMSs and credential issuers: list, show, retry."""

    @outbox.command("list")
    @click.option("--state", "states", multiple=True,
                  type=click.Choice(["pending", "delivering", "delivered", "parked", "superseded"]))
    @click.option("--kind", default=None, help="Kind prefix, e.g. ags. or credential.")
    @click.option("--limit", default=50, show_default=True)
    def list_messages(states, kind, limit):
        counts = service.counts(kind)
        click.echo("  ".join(f"{state}: {n}" for state, n in counts.items()))
        for m in service.messages(states=tuple(states) or None, kind_prefix=kind, limit=limit):
            click.echo(f"{m.id:>6}  {m.state:<10} {m.kind:<22} attempts={m.attempts:<3} {m.target[:60]}"
                       + (f"\n        last: {m.last_status}: {m.last_error}" if m.last_error else ""))

    @outbox.command("show")
    @click.argument("message_id", type=int)
    def show(message_id):
        from .models import OutboxMessage

        m = db.session.get(OutboxMessage, message_id)
        if m is None:
            raise click.ClickException(f"no outbox message {message_id}")
        click.echo(json.dumps({c.name: getattr(m, c.name) for c in m.__table__.columns}, default=str, indent=2))

    @outbox.command("retry")
    @click.argument("message_id", type=int, required=False)
    @click.option("--all-parked", is_flag=True, help="Retry every parked message (optionally of --kind).")
    @click.option("--kind", default=None)
    def retry(message_id, all_parked, kind):
        """Put parked messages back in line (their attempts start again)."""
        if all_parked:
            click.echo(f"{service.retry_parked(kind)} message(s) back in line")
        elif message_id is not None:
            if not service.retry(message_id):
                raise click.ClickException(f"message {message_id} is not parked")
            click.echo(f"message {message_id} back in line")
        else:
            raise click.UsageError("give a MESSAGE_ID or --all-parked")
