"""`medfabric mirror create | verify | list` and `medfabric volume mirror start | stop | status`."""

from __future__ import annotations

import sys

import click

from medfabric.cli.common import BOOL, command, emit, json_option, open_fabric, opt, print_fields, print_table


@click.group("mirror")
def mirror() -> None:
    """Mirrors: read-only copies of a volume, here or in another fabric, synced from snapshots."""


@command(mirror, "create")
@opt("name", required=True, help="The mirror volume's name (in the target fabric).")
@opt("source", required=True, help="The source volume's mount path: /mri_studies or FABRIC:/path.")
@opt("target", required=True, help="Where to mount the mirror: FABRIC:/path or /mapr/FABRIC/path.")
@opt("start", default="1", **BOOL, help="Run the first (full) sync now (default 1).")
@json_option
def create(name: str, source: str, target: str, start: bool, json: bool) -> None:
    """Create a mirror volume that follows a source volume.

    Example: medfabric mirror create -name mri_dr -source /mri_studies -target remote-cluster:/mri_studies
    """
    with open_fabric() as fabric:
        status, result = fabric.mirrors.create(name, source, target, start=start)
    document = {**status.as_json(), **({"sync": result.as_json()} if result else {})}
    text = f"Created mirror volume {name} of {status.source.volume}@{status.source.fabric_name}"
    if result is not None:
        text += f"; synced {result.snapshot} ({result.blobs_sent} blobs, {result.bytes_sent} bytes)"
    emit(json, [document], text)


@command(mirror, "verify")
@opt("name", required=True, help="The mirror volume (VOLUME or VOLUME@FABRIC).")
@json_option
def verify(name: str, json: bool) -> None:
    """Compare every path and file checksum of a mirror with the source snapshot it shows.

    Exits 1 when anything differs.

    Example: medfabric mirror verify -name mri_dr@remote-cluster
    """
    with open_fabric() as fabric:
        report = fabric.mirrors.verify(name)
    document = report.as_json()

    def text() -> None:
        for path, problem in report.mismatches:
            click.echo(f"MISMATCH: {path}: {problem}")
        click.echo(
            f"{report.volume}: {report.paths} paths, {report.files} files compared with "
            f"{report.source} snapshot {report.snapshot}: "
            + ("consistent" if report.ok else f"{len(report.mismatches)} mismatches")
        )

    emit(json, [document], text)
    sys.exit(0 if report.ok else 1)


@command(mirror, "list")
@json_option
def list_mirrors(json: bool) -> None:
    """This fabric's mirror volumes and the state of their syncs."""
    with open_fabric() as fabric:
        rows = [status.as_json() for status in fabric.mirrors.list()]
    emit(
        json,
        rows,
        lambda: print_table(rows, ["volumename", "source", "state", "lastSyncedSnapshot", "lastError"]),
    )


@click.group("mirror")
def volume_mirror() -> None:
    """Sync a mirror volume from its source: start [-full] | stop | status."""


@command(volume_mirror, "start")
@opt("name", required=True, help="The mirror volume (VOLUME or VOLUME@FABRIC).")
@opt("full", is_flag=True, help="Send every row again (blobs the mirror holds are still not resent).")
@json_option
def start(name: str, full: bool, json: bool) -> None:
    """Sync now: snapshot the source, send what changed, apply it atomically (resumes a killed sync).

    Example: medfabric volume mirror start -name mri_dr
    """
    with open_fabric() as fabric:
        result = fabric.mirrors.start(name, full=full)
    verb = "Stopped" if result.stopped else "Synced"
    emit(
        json,
        [result.as_json()],
        f"{verb} {name}: {result.snapshot} ({'full, ' if result.full else ''}{result.blobs_sent} blobs, "
        f"{result.bytes_sent} bytes sent, {result.seconds:.1f} s)",
    )


@command(volume_mirror, "stop")
@opt("name", required=True, help="The mirror volume (VOLUME or VOLUME@FABRIC).")
@json_option
def stop(name: str, json: bool) -> None:
    """Ask a running sync to stop after its current page; `start` resumes it."""
    with open_fabric() as fabric:
        status = fabric.mirrors.stop(name)
    emit(json, [status.as_json()], f"Stop requested for {name} (state {status.state})")


@command(volume_mirror, "status")
@opt("name", required=True, help="The mirror volume (VOLUME or VOLUME@FABRIC).")
@json_option
def status(name: str, json: bool) -> None:
    """The mirror's source, last synced snapshot, and the sync in progress."""
    with open_fabric() as fabric:
        document = fabric.mirrors.status(name).as_json()
    emit(json, [document], lambda: print_fields(document))
