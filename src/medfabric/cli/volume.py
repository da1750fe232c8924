"""`medfabric volume …`: create, modify, info, list, remove, mount, unmount, rename."""

from __future__ import annotations

from typing import Any

import click

from medfabric.cli.common import BOOL, command, emit, json_option, open_fabric, opt, print_fields, print_table
from medfabric.cli.snapshot import snapshot


@click.group("volume")
def volume() -> None:
    """Volumes: the unit of replication, quota, snapshots, mirrors and policy."""


volume.add_command(snapshot)


@command(volume, "create")
@opt("name", required=True, help="Volume name (letters, digits, . - _).")
@opt("path", help="Mount path, e.g. /mri_studies.")
@opt("parentvolume", help="Mount inside this volume and inherit its replication and compression.")
@opt("replication", type=click.IntRange(1, 6), help="Copies of every pack (default 3, capped by data dirs).")
@opt("minreplication", type=click.IntRange(1, 6), help="Copies that must be durable before a write returns.")
@opt("quota", help="Hard quota, e.g. 500G or 10T (0 = none; bare numbers are MB).")
@opt("advisoryquota", help="Advisory quota: passing it raises an alarm.")
@opt("readonly", default="0", **BOOL, help="1 to create it read-only.")
@opt("createparent", default="1", **BOOL, help="Create missing parent directories of -path (default 1).")
@opt("type", dest="volume_type", default="rw", type=click.Choice(["rw", "mirror"]), help="rw or mirror.")
@opt("compression", type=click.Choice(["off", "zstd"]), help="Compression of new data (default zstd).")
@json_option
def create(
    name: str,
    path: str | None,
    parentvolume: str | None,
    replication: int | None,
    minreplication: int | None,
    quota: str | None,
    advisoryquota: str | None,
    readonly: bool,
    createparent: bool,
    volume_type: str,
    compression: str | None,
    json: bool,
) -> None:
    """Create a volume.

    Example: medfabric volume create -name mri_studies -path /mri_studies
    """
    with open_fabric() as fabric:
        result = fabric.volumes.create(
            name,
            path,
            parent_volume=parentvolume,
            replication=replication,
            min_replication=minreplication,
            quota=quota,
            advisory_quota=advisoryquota,
            readonly=readonly,
            createparent=createparent,
            volume_type=volume_type,
            compression=compression,
        )
        document = fabric.volumes.describe(result.volume)
    emit(
        json, [document], f"Created volume {name}" + (f" at {path}" if path else ""), messages=result.warnings
    )


@command(volume, "modify")
@opt("name", required=True)
@opt("replication", type=click.IntRange(1, 6))
@opt("minreplication", type=click.IntRange(1, 6))
@opt("quota")
@opt("advisoryquota")
@opt("readonly", **BOOL)
@opt("compression", type=click.Choice(["off", "zstd"]))
@opt("type", dest="volume_type", type=click.Choice(["rw", "mirror"]), help="rw promotes a mirror.")
@json_option
def modify(
    name: str,
    replication: int | None,
    minreplication: int | None,
    quota: str | None,
    advisoryquota: str | None,
    readonly: bool | None,
    compression: str | None,
    volume_type: str | None,
    json: bool,
) -> None:
    """Change a volume's replication, quotas, read-only state or compression.

    Example: medfabric volume modify -name mri_studies -quota 10T -advisoryquota 8T
    """
    with open_fabric() as fabric:
        result = fabric.volumes.modify(
            name,
            replication=replication,
            min_replication=minreplication,
            quota=quota,
            advisory_quota=advisoryquota,
            readonly=readonly,
            compression=compression,
            volume_type=volume_type,
        )
        document = fabric.volumes.describe(result.volume)
    emit(json, [document], f"Modified volume {name}", messages=result.warnings)


@command(volume, "info")
@opt("name", required=True)
@opt("usage", is_flag=True, help="Add stored bytes, packs and replicas.")
@json_option
def info(name: str, usage: bool, json: bool) -> None:
    """Show a volume's attributes (and, with -usage, its space).

    Example: medfabric volume info -name medical_images -usage
    """
    with open_fabric() as fabric:
        found = fabric.volumes.info(name)
        document = fabric.volumes.describe(found, fabric.volumes.usage(name) if usage else None)
    emit(json, [document], lambda: print_fields(document))


LIST_COLUMNS = (
    "volumename",
    "mountdir",
    "mounted",
    "numreplicas",
    "minreplicas",
    "quota",
    "logicalUsed",
    "numFiles",
    "readonly",
    "volumetype",
)


@command(volume, "list")
@opt("columns", help="Comma-separated fields to show, e.g. volumename,mountdir.")
@json_option
def list_(columns: str | None, json: bool) -> None:
    """List volumes.

    Example: medfabric volume list -columns volumename,mountdir,numreplicas
    """
    with open_fabric() as fabric:
        documents = [fabric.volumes.describe(found) for found in fabric.volumes.list()]
    wanted = [c.strip() for c in columns.split(",")] if columns else list(LIST_COLUMNS)
    selected: list[dict[str, Any]] = [
        {column: document.get(column) for column in wanted} for document in documents
    ]
    emit(json, selected if columns else documents, lambda: print_table(selected, wanted))


@command(volume, "remove")
@opt("name", required=True)
@opt("force", default="0", **BOOL, help="Accepted for MapR compatibility.")
@json_option
def remove(name: str, force: bool, json: bool) -> None:
    """Remove a volume and everything in it (refused while volumes are mounted inside it)."""
    with open_fabric() as fabric:
        fabric.volumes.remove(name, force=force)
    emit(json, [], f"Removed volume {name}")


@command(volume, "mount")
@opt("name", required=True)
@opt("path", help="Where to mount it (default: its last mount path).")
@opt("createparent", default="1", **BOOL)
@json_option
def mount(name: str, path: str | None, createparent: bool, json: bool) -> None:
    """Mount a volume into the namespace."""
    with open_fabric() as fabric:
        found = fabric.volumes.mount(name, path, createparent=createparent)
    emit(
        json,
        [{"volumename": found.name, "mountdir": found.mount_path}],
        f"Mounted {name} at {found.mount_path}",
    )


@command(volume, "unmount")
@opt("name", required=True)
@json_option
def unmount(name: str, json: bool) -> None:
    """Take a volume out of the namespace (its data stays)."""
    with open_fabric() as fabric:
        fabric.volumes.unmount(name)
    emit(json, [], f"Unmounted {name}")


@command(volume, "rename")
@opt("name", required=True)
@opt("newname", required=True)
@json_option
def rename(name: str, newname: str, json: bool) -> None:
    """Rename a volume."""
    with open_fabric() as fabric:
        fabric.volumes.rename(name, newname)
    emit(json, [], f"Renamed {name} to {newname}")
