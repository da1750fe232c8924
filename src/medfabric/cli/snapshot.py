"""`medfabric volume snapshot …`: create, list, remove, preserve, restore."""

from __future__ import annotations

import sys

import click

from medfabric.cli.common import command, emit, json_option, open_fabric, opt, print_table


@click.group("snapshot")
def snapshot() -> None:
    """Read-only, point-in-time images of a volume, at <mount>/.snapshot/<name>."""


@command(snapshot, "create")
@opt("volume", required=True)
@opt("snapshotname", required=True)
@opt("retain", help="Expire after this long, e.g. 7d or 12h (default: never).")
@json_option
def create(volume: str, snapshotname: str, retain: str | None, json: bool) -> None:
    """Create a snapshot (O(1): no data is copied).

    Example: medfabric volume snapshot create -volume mri_studies -snapshotname before-cleanup -retain 7d
    """
    with open_fabric() as fabric:
        made = fabric.snapshots.create(volume, snapshotname, retain=retain)
        document = fabric.snapshots.describe(made, with_space=False)
    emit(json, [document], f"Created snapshot {snapshotname} of {volume}")


COLUMNS = ["snapshotname", "volumename", "creationtime", "expirytime", "preserved", "ownedsize", "sharedsize"]


@command(snapshot, "list")
@opt("volume", help="Only this volume's snapshots.")
@json_option
def list_snapshots(volume: str | None, json: bool) -> None:
    """List snapshots with the space they own and share."""
    with open_fabric() as fabric:
        rows = [fabric.snapshots.describe(found) for found in fabric.snapshots.list(volume)]
    emit(json, rows, lambda: print_table(rows, COLUMNS))


@command(snapshot, "remove")
@opt("volume", required=True)
@opt("snapshotname", required=True)
@json_option
def remove(volume: str, snapshotname: str, json: bool) -> None:
    """Remove a snapshot (its space is reclaimed by the next gc)."""
    with open_fabric() as fabric:
        fabric.snapshots.remove(volume, snapshotname)
    emit(json, [], f"Removed snapshot {snapshotname} of {volume}")


@command(snapshot, "preserve")
@opt("volume", required=True)
@opt("snapshotname", required=True)
@json_option
def preserve(volume: str, snapshotname: str, json: bool) -> None:
    """Keep a snapshot past its expiry."""
    with open_fabric() as fabric:
        fabric.snapshots.preserve(volume, snapshotname)
    emit(json, [], f"Preserved snapshot {snapshotname} of {volume}")


@command(snapshot, "restore")
@opt("volume", required=True)
@opt("snapshotname", required=True)
@opt("force", is_flag=True, help="Restore even though the volume changed since the snapshot.")
@json_option
def restore(volume: str, snapshotname: str, force: bool, json: bool) -> None:
    """Roll a volume back to a snapshot, after taking a safety snapshot of its present state.

    Example: medfabric volume snapshot restore -volume mri_studies -snapshotname before-cleanup -force
    """
    with open_fabric() as fabric:
        if not force and not json and sys.stdin.isatty():
            changes = fabric.snapshots.changes(volume, snapshotname)
            if changes.changed:
                click.echo(
                    f"Volume {volume} changed since {snapshotname}: {changes.added} new or changed entries "
                    f"(e.g. {', '.join(changes.examples) or '-'}) will be discarded and {changes.removed} "
                    "brought back. They stay in a safety snapshot."
                )
                force = click.confirm("Restore?", default=False)
                if not force:
                    raise click.Abort()
        result = fabric.snapshots.restore(volume, snapshotname, force=force)
    emit(
        json,
        [
            {
                "snapshotname": result.snapshot,
                "safetysnapshot": result.safety_snapshot,
                "discarded": result.discarded.added,
                "restored": result.discarded.removed,
            }
        ],
        f"Restored {volume} to {snapshotname}; its previous state is snapshot {result.safety_snapshot}",
    )
