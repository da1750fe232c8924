"""Volume rows: creating, reading, changing and removing them, inside a caller's transaction.

Mechanism only: the service layer decides who may do it and validates the options first.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.catalog.schema import blobs, contents, entries, extents, packs, snapshots, volumes
from medfabric.errors import NotFound
from medfabric.fs.model import KIND_DIR, Volume
from medfabric.fs.namespace import ROOT_NAME, ROOT_PARENT, make_ino

ROOT_COUNTER = 1
FIRST_VERSION = 1


def get_volume(conn: Connection, name: str) -> Volume:
    row = conn.execute(sa.select(volumes).where(volumes.c.name == name)).first()
    if row is None:
        raise NotFound(f"volume {name!r} does not exist")
    return Volume.from_row(row)


def get_volume_by_id(conn: Connection, volume_id: int) -> Volume:
    row = conn.execute(sa.select(volumes).where(volumes.c.id == volume_id)).first()
    if row is None:
        raise NotFound(f"volume {volume_id} does not exist")
    return Volume.from_row(row)


def volume_exists(conn: Connection, name: str) -> bool:
    return conn.execute(sa.select(volumes.c.id).where(volumes.c.name == name)).first() is not None


def list_volumes(conn: Connection) -> list[Volume]:
    return [Volume.from_row(row) for row in conn.execute(sa.select(volumes).order_by(volumes.c.name))]


def insert_volume(
    conn: Connection,
    *,
    name: str,
    mount_path: str | None,
    parent_id: int | None,
    volume_type: str,
    replication: int,
    min_replication: int,
    quota: int,
    advisory_quota: int,
    readonly: bool,
    compression: str,
    owner: str,
    now_ns: int,
    root_mode: int = 0o755,
    root_group: str | None = None,
    **attributes: Any,
) -> Volume:
    now_ms = now_ns // 1_000_000
    volume_id = conn.execute(
        volumes.insert()
        .values(
            name=name,
            mount_path=mount_path,
            mounted=mount_path is not None,
            parent_id=parent_id,
            type=volume_type,
            root_ino=0,
            version=FIRST_VERSION,
            next_ino=ROOT_COUNTER + 1,
            replication=replication,
            min_replication=min_replication,
            **attributes,
            quota=quota,
            advisory_quota=advisory_quota,
            readonly=readonly,
            compression=compression,
            owner=owner,
            created_at=now_ms,
            modified_at=now_ms,
            logical_bytes=0,
            file_count=0,
            dir_count=0,
        )
        .returning(volumes.c.id)
    ).scalar_one()
    root_ino = make_ino(volume_id, ROOT_COUNTER)
    conn.execute(volumes.update().where(volumes.c.id == volume_id).values(root_ino=root_ino))
    conn.execute(
        entries.insert().values(
            volume_id=volume_id,
            parent_ino=ROOT_PARENT,
            name=ROOT_NAME,
            ino=root_ino,
            kind=KIND_DIR,
            mode=root_mode,
            owner=owner,
            grp=root_group or owner,
            size=0,
            mtime_ns=now_ns,
            ctime_ns=now_ns,
            atime_ns=now_ns,
            content_id=None,
            target=None,
            born=FIRST_VERSION,
            died=None,
        )
    )
    return get_volume_by_id(conn, volume_id)


def update_volume(conn: Connection, volume_id: int, **values: Any) -> None:
    conn.execute(volumes.update().where(volumes.c.id == volume_id).values(**values))


def delete_volume(conn: Connection, volume: Volume, now_ms: int) -> None:
    """Remove the volume and its namespace; its packs are left marked for GC to delete."""
    content_ids = sa.select(contents.c.id).where(contents.c.volume_id == volume.id)
    conn.execute(extents.delete().where(extents.c.content_id.in_(content_ids)))
    conn.execute(contents.delete().where(contents.c.volume_id == volume.id))
    conn.execute(entries.delete().where(entries.c.volume_id == volume.id))
    conn.execute(blobs.delete().where(blobs.c.volume_id == volume.id))
    conn.execute(
        packs.update()
        .where(packs.c.volume_id == volume.id)
        .values(state="deleting", writer=None, sealed_at=now_ms)
    )
    conn.execute(snapshots.delete().where(snapshots.c.volume_id == volume.id))
    conn.execute(volumes.update().where(volumes.c.parent_id == volume.id).values(parent_id=None))
    conn.execute(volumes.delete().where(volumes.c.id == volume.id))


def stored_usage(conn: Connection, volume_id: int) -> dict[str, int]:
    """Bytes the volume occupies in the blob store, before and after replication."""
    stored, blob_count = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(blobs.c.stored_length), 0), sa.func.count()).where(
            blobs.c.volume_id == volume_id
        )
    ).one()
    pack_rows = conn.execute(
        sa.select(packs.c.id, packs.c.replicas, packs.c.size).where(
            packs.c.volume_id == volume_id, packs.c.state != "deleting"
        )
    ).all()
    replicas = [len([r for r in str(row.replicas).split(",") if r]) for row in pack_rows]
    pack_bytes = sum(int(row.size) for row in pack_rows)
    replicated = sum(int(row.size) * count for row, count in zip(pack_rows, replicas, strict=True))
    return {
        "storedBytes": int(stored),
        "blobs": int(blob_count),
        "packs": len(pack_rows),
        "packBytes": pack_bytes,
        "replicatedBytes": replicated,
        "minReplicasOfAnyPack": min(replicas, default=0),
    }
