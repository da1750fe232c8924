"""`medfabric alarm list | clear`."""

from __future__ import annotations

import click

from medfabric.cli.common import command, emit, json_option, open_fabric, opt, print_table


@click.group("alarm")
def alarm() -> None:
    """Alarms raised by the fabric."""


@command(alarm, "list")
@opt("entity", help="Only alarms of this entity, e.g. 'volume mri_studies'.")
@json_option
def list_alarms(entity: str | None, json: bool) -> None:
    """List active alarms."""
    with open_fabric() as fabric:
        rows = [found.as_json() for found in fabric.admin.alarms(entity)]
    emit(
        json,
        rows,
        lambda: (
            print_table(rows, ["alarm name", "entity", "description"])
            if rows
            else click.echo("No active alarms.")
        ),
    )


@command(alarm, "clear")
@opt("alarm", dest="name", required=True)
@opt("entity", required=True)
@json_option
def clear(name: str, entity: str, json: bool) -> None:
    """Clear an alarm."""
    with open_fabric() as fabric:
        fabric.admin.clear_alarm(name, entity)
    emit(json, [], f"Cleared {name} on {entity}")
