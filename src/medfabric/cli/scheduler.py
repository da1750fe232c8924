"""`medfabric scheduler run | tick`: run what schedules say is due."""

from __future__ import annotations

from typing import Any

import click

from medfabric.cli.common import command, emit, json_option, open_fabric, opt, print_json, print_table

COLUMNS = ["schedule", "action", "volume", "result", "error"]


@click.group("scheduler")
def scheduler() -> None:
    """The scheduler: snapshots, mirror syncs, scrubs and catalog backups when they are due."""


@command(scheduler, "tick")
@json_option
def tick(json: bool) -> None:
    """One pass: run every due job once (missed runs are caught up once), expire old snapshots.

    Example (cron, every minute): * * * * * medfabric scheduler tick
    """
    with open_fabric() as fabric:
        rows = [outcome.as_json() for outcome in fabric.schedules.run_due()]
    emit(json, rows, lambda: print_table(rows, COLUMNS) if rows else click.echo("Nothing was due."))


@command(scheduler, "run")
@opt("interval", type=click.FloatRange(min=0.1), default=60.0, help="Seconds between passes (default 60).")
@json_option
def run(interval: float, json: bool) -> None:
    """Run passes until interrupted (Ctrl-C); each job's outcome is printed as it happens.

    Example: medfabric scheduler run -interval 30
    """
    from medfabric.replication.scheduler import Outcome, Scheduler

    def show(outcome: Outcome) -> None:
        row: dict[str, Any] = outcome.as_json()
        if json:
            print_json(row)
        else:
            click.echo(" ".join(f"{key}={row[key]}" for key in COLUMNS if row.get(key) is not None))

    with open_fabric() as fabric:
        loop = Scheduler(fabric.schedules.run_due, interval_s=interval, on_outcome=show)
        try:
            loop.run()
        except KeyboardInterrupt:
            loop.stop()
    if not json:
        click.echo(f"Scheduler stopped after {loop.passes} passes.", err=True)
