"""Reconciling the imaging index with the namespace, which is also writable by hand (`fs rm`, `fs mv`,
`fs put`): which indexed files are gone or moved, which DICOM files are not indexed.

Helpers on a caller's connection; they never read file contents (the service does, through the
fabric) and never commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.catalog.engine import chunked
from medfabric.catalog.schema import dicom_instances, entries, volumes
from medfabric.fs.model import KIND_FILE, Volume


@dataclass(frozen=True)
class IndexedRow:
    id: int
    sop_uid: str
    version: int
    ino: int
    path: str


def live_files(conn: Connection, volume: Volume) -> dict[int, str]:
    """Every live regular file of the volume: inode → fabric path."""
    rows = conn.execute(
        sa.select(entries.c.ino, entries.c.parent_ino, entries.c.name, entries.c.kind).where(
            entries.c.volume_id == volume.id, entries.c.died.is_(None)
        )
    ).all()
    parents = {int(ino): (int(parent), str(name)) for ino, parent, name, _kind in rows}
    mount = (volume.mount_path or "/").rstrip("/")
    cache: dict[int, str] = {volume.root_ino: mount}

    def path_of(ino: int) -> str | None:
        trail: list[str] = []
        current = ino
        while current not in cache:
            if current not in parents:
                return None  # an orphan (fsck reports those)
            parent, name = parents[current]
            trail.append(name)
            current = parent
        path = cache[current]
        for name in reversed(trail):
            path = f"{path}/{name}"
        return path

    files: dict[int, str] = {}
    for ino, _parent, _name, kind in rows:
        if kind == KIND_FILE:
            path = path_of(int(ino))
            if path is not None:
                files[int(ino)] = path
    return files


def indexed_rows(conn: Connection, volume_id: int) -> list[IndexedRow]:
    return _rows(conn, dicom_instances.c.volume_id == volume_id)


def rows_of_files(conn: Connection, volume_id: int, inos: Iterable[int]) -> list[IndexedRow]:
    """The index rows of these files of the volume (by inode)."""
    found: list[IndexedRow] = []
    for part in chunked(sorted(set(inos))):
        found.extend(
            _rows(conn, (dicom_instances.c.volume_id == volume_id) & dicom_instances.c.ino.in_(part))
        )
    return found


def rows_under(conn: Connection, volume_id: int, path: str) -> list[IndexedRow]:
    """The index rows of the file at ``path`` or of the files below it, in the volume."""
    below = path.rstrip("/") + "/"
    return _rows(
        conn,
        (dicom_instances.c.volume_id == volume_id)
        & (
            (dicom_instances.c.path == path)
            | (sa.func.substr(dicom_instances.c.path, 1, len(below)) == below)
        ),
    )


def _rows(conn: Connection, condition: sa.ColumnElement[bool]) -> list[IndexedRow]:
    rows = conn.execute(
        sa.select(
            dicom_instances.c.id,
            dicom_instances.c.sop_uid,
            dicom_instances.c.version,
            dicom_instances.c.ino,
            dicom_instances.c.path,
        ).where(condition)
    )
    return [IndexedRow(int(r.id), str(r.sop_uid), int(r.version), int(r.ino), str(r.path)) for r in rows]


def update_row(conn: Connection, row_id: int, values: dict[str, object]) -> None:
    conn.execute(dicom_instances.update().where(dicom_instances.c.id == row_id).values(**values))


def update_paths(conn: Connection, moved: dict[int, str]) -> None:
    """Index rows (by id) whose file was renamed: their new paths."""
    for row_id, path in moved.items():
        conn.execute(dicom_instances.update().where(dicom_instances.c.id == row_id).values(path=path))


def recompute_latest(conn: Connection, sop_uids: Iterable[str]) -> set[int]:
    """Mark the highest remaining version of each UID as the latest; returns the series touched."""
    series: set[int] = set()
    for part in chunked(sorted(set(sop_uids))):
        versions: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        for row_id, uid, version, series_pk in conn.execute(
            sa.select(
                dicom_instances.c.id,
                dicom_instances.c.sop_uid,
                dicom_instances.c.version,
                dicom_instances.c.series_pk,
            ).where(dicom_instances.c.sop_uid.in_(part))
        ):
            versions[str(uid)].append((int(version), int(row_id), int(series_pk)))
        for rows in versions.values():
            newest = max(rows)[1]
            for _version, row_id, series_pk in rows:
                series.add(series_pk)
                conn.execute(
                    dicom_instances.update()
                    .where(dicom_instances.c.id == row_id)
                    .values(latest=row_id == newest)
                )
    return series


def orphaned_rows(conn: Connection) -> list[IndexedRow]:
    """Index rows of volumes that no longer exist (`volume remove`)."""
    return _rows(conn, dicom_instances.c.volume_id.not_in(sa.select(volumes.c.id)))
