"""`medfabric volume …`: create, modify, info, list, remove, mount, unmount, rename."""

from __future__ import annotations

from typing import Any

import click

from medfabric.cli.common import BOOL, command, emit, json_option, open_fabric, opt, print_fields, print_table
from medfabric.cli.mirror import volume_mirror
from medfabric.cli.snapshot import snapshot


@click.group("volume")
def volume() -> None:
    """Volumes: the unit of replication, quota, snapshots, mirrors and policy."""


volume.add_command(snapshot)
volume.add_command(volume_mirror)


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
@opt(
    "readAce",
    dest="read_ace",
    help="Who may read the volume's data (default: its creator), e.g. 'g:radiology'.",
)
@opt("writeAce", dest="write_ace", help="Who may write the volume's data (default: its creator).")
@opt("dare", default=None, **BOOL, help="1 to encrypt everything at rest (data at rest encryption).")
@opt("source", help="With -type mirror: the volume it follows, VOLUME or VOLUME@FABRIC.")
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
    read_ace: str | None,
    write_ace: str | None,
    dare: bool | None,
    source: str | None,
    json: bool,
) -> None:
    """Create a volume.

    Example: medfabric volume create -name mri_studies -path /mri_studies

    Example: medfabric volume create -name mri_dr -path /mri_dr -type mirror -source mri_studies@hospital
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
            read_ace=read_ace,
            write_ace=write_ace,
            dare=dare,
            source=source,
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
@opt("readAce", dest="read_ace", help="Who may read the volume's data, e.g. 'g:radiology | p'.")
@opt("writeAce", dest="write_ace", help="Who may write the volume's data.")
@opt("source", help="Make this mirror follow VOLUME@FABRIC (failback: with -type mirror).")
@opt("schedule", help="Snapshot schedule (id or name; 0 detaches).")
@opt("mirrorschedule", help="Mirror sync schedule (id or name; 0 detaches).")
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
    read_ace: str | None,
    write_ace: str | None,
    source: str | None,
    schedule: str | None,
    mirrorschedule: str | None,
    json: bool,
) -> None:
    """Change a volume's replication, quotas, read-only state, compression, ACEs or schedules.

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
            read_ace=read_ace,
            write_ace=write_ace,
            source=source,
            schedule=schedule,
            mirror_schedule=mirrorschedule,
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


@command(volume, "encrypt")
@opt("name", required=True)
@opt("enabled", required=True, **BOOL, help="1 to encrypt the volume (it cannot be turned off).")
@opt("background", default="0", **BOOL, help="1 to re-encrypt in a background process (log in <home>/logs).")
@json_option
def encrypt(name: str, enabled: bool, background: bool, json: bool) -> None:
    """Encrypt a volume at rest: new writes at once, existing data rewritten with progress.

    Example: medfabric volume encrypt -name medical_images -enabled true
    """
    import subprocess
    import sys

    from medfabric.errors import Conflict

    if not enabled:
        raise Conflict(f"volume {name}: encryption cannot be turned off (copy the data to a new volume)")
    with open_fabric() as fabric:
        if background:
            fabric.encryption.enable(name, reencrypt=False)
            logs = fabric.config.home / "logs"
            logs.mkdir(exist_ok=True)
            with (logs / f"encrypt-{name}.log").open("ab") as log:
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "medfabric.cli.main",
                        "volume",
                        "encrypt",
                        "-name",
                        name,
                        "-enabled",
                        "1",
                    ],
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            emit(
                json,
                [{"volumename": name, "encryption": "encrypting"}],
                f"Encrypting {name} in the background (see {logs / f'encrypt-{name}.log'})",
            )
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        with Progress(TextColumn("re-encrypting"), BarColumn(), MofNCompleteColumn(), disable=json) as bar:
            task = bar.add_task("blobs", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            found = fabric.encryption.enable(name, progress=advance)
        document = fabric.volumes.describe(found)
    emit(json, [document], f"Volume {name} is encrypted at rest")


@command(volume, "clone")
@opt("name", required=True, help="The new volume.")
@opt("source", required=True, help="The volume to copy.")
@opt("path", help="Where to mount the copy (default /NAME).")
@opt("deidentify", is_flag=True, help="De-identify its DICOM instances (PS3.15) instead of copying them.")
@opt("profile", default="basic", help="basic, longitudinal, research, or a profile TOML file.")
@opt("options", help="PS3.15 options, comma-separated.")
@opt("reidrole", help="Keep an encrypted re-identification map for this role.")
@json_option
def clone(
    name: str,
    source: str,
    path: str | None,
    deidentify: bool,
    profile: str,
    options: str | None,
    reidrole: str | None,
    json: bool,
) -> None:
    """Copy a volume into a new one, de-identified for research or non-production use if asked.

    Example: medfabric volume clone -name research_mri -source mri_studies -deidentify -profile research
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    chosen = [part.strip() for part in (options or "").split(",") if part.strip()]
    with (
        open_fabric() as fabric,
        Progress(TextColumn("cloning"), BarColumn(), MofNCompleteColumn(), disable=json) as bar,
    ):
        task = bar.add_task("instances", total=None)
        run = fabric.deid.clone_volume(
            name,
            source,
            path=path,
            deidentify=deidentify,
            profile=profile,
            options=chosen,
            reid_role=reidrole,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
        document = fabric.volumes.describe(fabric.volumes.info(name))
    if run is not None:
        document["deidentification"] = run.as_json()
    emit(
        json,
        [document],
        f"Cloned {source} into {name}" + (f" (de-identified: {run.counts()})" if run else ""),
    )
