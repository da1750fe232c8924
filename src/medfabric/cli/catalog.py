"""`medfabric catalog backup | list | restore | rebuild-index`."""

from __future__ import annotations

import click

from medfabric.cli.common import command, emit, json_option, open_fabric, opt, print_fields, print_table


@click.group("catalog")
def catalog() -> None:
    """The catalog's backups (kept in the blob store) and the blob index."""


@command(catalog, "backup")
@opt("keep", type=click.IntRange(1), help="Keep only the newest N backups.")
@json_option
def backup(keep: int | None, json: bool) -> None:
    """Store a consistent copy of the catalog in every storage location.

    Example: medfabric catalog backup -keep 14
    """
    with open_fabric() as fabric:
        made = fabric.backups.backup(keep=keep)
    emit(
        json,
        [made.as_json()],
        f"Backed up the catalog as {made.name} ({made.size} bytes, {len(made.locations)} copies)",
    )


@command(catalog, "list")
@json_option
def list_backups(json: bool) -> None:
    """List catalog backups, oldest first."""
    with open_fabric() as fabric:
        rows = [found.as_json() for found in fabric.backups.list()]
    emit(json, rows, lambda: print_table(rows, ["name", "size", "creationtime"]))


@command(catalog, "restore")
@opt("backup", help="The backup to restore (default: the newest).")
@json_option
def restore(backup: str | None, json: bool) -> None:
    """Bring the catalog back from a backup, then rebuild the blob index from the packs.

    Stop every process that uses the fabric first. Works when the catalog file is gone: the config
    file names the data directories. The catalog it replaces is kept beside it.

    Example: medfabric catalog restore -backup 20250131T020000.000Z.sqlite.zst
    """
    from medfabric.config import default_home, default_user
    from medfabric.service.backups import restore_catalog

    result = restore_catalog(default_home(), backup, user=default_user())
    document = {
        "backup": result.backup,
        "catalog": result.catalog,
        "previous": result.previous,
        "index": result.index.as_json() if result.index else None,
    }
    emit(json, [document], lambda: print_fields(document))


@command(catalog, "rebuild-index")
@json_option
def rebuild_index(json: bool) -> None:
    """Rebuild the blob index from the pack objects alone (on a quiet fabric).

    Example: medfabric catalog rebuild-index
    """
    with open_fabric() as fabric:
        document = fabric.backups.rebuild_index().as_json()
    emit(json, [document], lambda: print_fields(document))
