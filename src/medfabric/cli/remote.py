"""`medfabric remote add | list | remove`: other fabrics, known by name."""

from __future__ import annotations

import click

from medfabric.cli.common import command, emit, json_option, open_fabric, print_table


@click.group("remote")
def remote() -> None:
    """Other fabrics (mirror sources and targets): /mapr/NAME/path, NAME:/path, vol@NAME."""


@command(remote, "add")
@click.argument("name")
@click.argument("location")
@json_option
def add(name: str, location: str, json: bool) -> None:
    """Register the fabric at LOCATION (its home directory) as NAME.

    Example: medfabric remote add remote-cluster /srv/dr/medfabric
    """
    with open_fabric() as fabric:
        added = fabric.remotes.add(name, location)
    emit(json, [added.as_json()], f"Added remote {name}: fabric {added.fabric_name} at {added.location}")


@command(remote, "list")
@json_option
def list_remotes(json: bool) -> None:
    """List registered fabrics."""
    with open_fabric() as fabric:
        rows = [found.as_json() for found in fabric.remotes.list()]
    emit(json, rows, lambda: print_table(rows, ["name", "fabricname", "location"]))


@command(remote, "remove")
@click.argument("name")
@json_option
def remove(name: str, json: bool) -> None:
    """Forget a registered fabric (mirrors that follow it keep its location)."""
    with open_fabric() as fabric:
        fabric.remotes.remove(name)
    emit(json, [], f"Removed remote {name}")
