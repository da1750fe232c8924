"""`medfabric dashboard info`: one look at the whole fabric."""

from __future__ import annotations

import click

from medfabric.cli.common import command, emit, json_option, open_fabric
from medfabric.units import human_size


@click.group("dashboard")
def dashboard() -> None:
    """The fabric at a glance."""


@command(dashboard, "info")
@json_option
def info(json: bool) -> None:
    """Fabric name, version, volumes, capacity and usage per data directory, alarms.

    Example: medfabric dashboard info -json
    """
    with open_fabric() as fabric:
        document = fabric.admin.dashboard()

    def text() -> None:
        cluster, volumes = document["cluster"], document["volumes"]
        click.echo(f"Fabric {cluster['name']} (medfabric {cluster['version']})")
        click.echo(
            f"Volumes: {volumes['count']} ({volumes['mounted']} mounted), {volumes['files']} files, "
            f"{human_size(volumes['logicalBytes'])}"
        )
        for storage in document["utilization"]["storage"]:
            if storage["totalBytes"]:
                click.echo(
                    f"  {storage['uri']}: {human_size(storage['usedBytes'])} used of "
                    f"{human_size(storage['totalBytes'])}"
                )
            else:
                click.echo(f"  {storage['uri']}")
        click.echo(f"Alarms: {len(document['alarms'])}")
        for alarm in document["alarms"]:
            click.echo(f"  {alarm['alarm name']} {alarm['entity']}: {alarm['description']}")

    emit(json, [document], text)
