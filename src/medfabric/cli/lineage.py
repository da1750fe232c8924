"""`medfabric lineage show`: where a file came from, or what was made from it."""

from __future__ import annotations

import click

from medfabric.cli.common import command, emit, json_option, open_fabric


@click.group("lineage")
def lineage() -> None:
    """Data lineage: imports, and the inputs, transform and parameters of derived data."""


@command(lineage, "show")
@click.argument("path")
@click.option(
    "-upstream",
    "--upstream",
    "direction",
    flag_value="upstream",
    default=True,
    help="Where PATH came from (default).",
)
@click.option(
    "-downstream", "--downstream", "direction", flag_value="downstream", help="What was made from PATH."
)
@json_option
def show(path: str, direction: str, json: bool) -> None:
    """Show lineage edges, following them transitively.

    Example: medfabric lineage show /research/cohort1/scan.dcm -upstream
    """
    with open_fabric() as fabric:
        edges = [edge.as_json() for edge in fabric.lineage.show(path, direction=direction)]

    def text() -> None:
        if not edges:
            click.echo(f"No {direction} lineage for {path}")
        for edge in edges:
            click.echo(f"{edge['output']} <- {edge['input']}  [{edge['transform']} {edge['params']}]")

    emit(json, edges, text)
