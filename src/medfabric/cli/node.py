"""`medfabric node list`: the hosts serving the fabric and their services."""

from __future__ import annotations

import click

from medfabric.cli.common import command, emit, json_option, open_fabric, opt, print_table


@click.group("node")
def node() -> None:
    """Hosts of the fabric."""


@command(node, "list")
@opt("columns", help="Comma-separated columns, e.g. hostname,svc.")
@json_option
def list_nodes(columns: str | None, json: bool) -> None:
    """List the fabric's nodes.

    Example: medfabric node list -columns hostname,svc
    """
    with open_fabric() as fabric:
        rows = fabric.admin.node_list()
    wanted = (
        [c.strip() for c in columns.split(",")]
        if columns
        else ["hostname", "svc", "version", "lastheartbeat"]
    )
    unknown = [c for c in wanted if rows and c not in rows[0]]
    if unknown:
        raise click.BadParameter(f"unknown column(s) {', '.join(unknown)}", param_hint="-columns")
    selected = [{column: row[column] for column in wanted} for row in rows]
    emit(json, selected, lambda: print_table(selected, wanted))
