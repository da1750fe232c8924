"""Snapshots as catalog rows: create in O(1), restore by version arithmetic, measure their space.

A snapshot names a volume version S; what it sees is every entry row with born <= S < died.
Creating one closes version S (the volume's open version becomes S + 1): no row is copied.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.catalog.schema import contents, entries, snapshots, volumes
from medfabric.errors import Conflict, NotFound
from medfabric.fs.model import KIND_DIR, Volume
from medfabric.fs.namespace import ROOT_PARENT, visible_at


@dataclass(frozen=True)
class Snapshot:
    id: int
    volume_id: int
    name: str
    version: int
    created_at: int
    expires_at: int | None
    preserved: bool
    owner: str


def _snapshot(row: sa.Row[tuple[object, ...]]) -> Snapshot:
    m = row._mapping
    return Snapshot(
        int(m["id"]),
        int(m["volume_id"]),
        str(m["name"]),
        int(m["version"]),
        int(m["created_at"]),
        None if m["expires_at"] is None else int(m["expires_at"]),
        bool(m["preserved"]),
        str(m["owner"]),
    )


def lock_volume(conn: Connection, volume_id: int) -> Volume:
    row = conn.execute(sa.select(volumes).where(volumes.c.id == volume_id).with_for_update()).first()
    if row is None:
        raise NotFound(f"volume {volume_id} no longer exists")
    return Volume.from_row(row)


def create_snapshot(
    conn: Connection, volume_id: int, name: str, *, owner: str, now_ms: int, expires_at: int | None
) -> Snapshot:
    """O(1): one row, and the volume's open version moves on."""
    volume = lock_volume(conn, volume_id)
    if find_snapshot(conn, volume_id, name) is not None:
        raise Conflict(f"volume {volume.name} already has a snapshot {name!r}")
    conn.execute(
        snapshots.insert().values(
            volume_id=volume_id,
            name=name,
            version=volume.version,
            created_at=now_ms,
            expires_at=expires_at,
            preserved=False,
            owner=owner,
        )
    )
    conn.execute(volumes.update().where(volumes.c.id == volume_id).values(version=volume.version + 1))
    found = find_snapshot(conn, volume_id, name)
    assert found is not None
    return found


def find_snapshot(conn: Connection, volume_id: int, name: str) -> Snapshot | None:
    row = conn.execute(
        sa.select(snapshots).where(snapshots.c.volume_id == volume_id, snapshots.c.name == name)
    ).first()
    return _snapshot(row) if row is not None else None


def list_snapshots(conn: Connection, volume_id: int | None = None) -> list[Snapshot]:
    query = sa.select(snapshots).order_by(snapshots.c.volume_id, snapshots.c.version)
    if volume_id is not None:
        query = query.where(snapshots.c.volume_id == volume_id)
    return [_snapshot(row) for row in conn.execute(query)]


def set_preserved(conn: Connection, snapshot: Snapshot, preserved: bool) -> None:
    conn.execute(snapshots.update().where(snapshots.c.id == snapshot.id).values(preserved=preserved))


def delete_snapshot(conn: Connection, snapshot: Snapshot) -> None:
    """The rows only it could see become garbage for the next GC run."""
    conn.execute(snapshots.delete().where(snapshots.c.id == snapshot.id))


@dataclass(frozen=True)
class ChangeSummary:
    """What the live volume holds that a snapshot does not, and the reverse."""

    added: int  # live rows the snapshot does not see (new or changed entries)
    removed: int  # rows the snapshot sees that are no longer live (deleted or changed entries)
    examples: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


def changes_since(conn: Connection, volume_id: int, version: int) -> ChangeSummary:
    added = conn.execute(
        sa.select(sa.func.count()).where(
            entries.c.volume_id == volume_id, entries.c.died.is_(None), entries.c.born > version
        )
    ).scalar_one()
    removed = conn.execute(
        sa.select(sa.func.count()).where(
            entries.c.volume_id == volume_id, visible_at(version), entries.c.died.is_not(None)
        )
    ).scalar_one()
    names = (
        conn.execute(
            sa.select(entries.c.name)
            .where(
                entries.c.volume_id == volume_id,
                entries.c.died.is_(None),
                entries.c.born > version,
                entries.c.parent_ino != ROOT_PARENT,
            )
            .limit(5)
        )
        .scalars()
        .all()
    )
    return ChangeSummary(int(added), int(removed), tuple(str(name) for name in names))


def roll_back(conn: Connection, volume: Volume, version: int, now_ms: int) -> None:
    """Make the open version of a locked volume show exactly what ``version`` showed.

    The caller has taken a safety snapshot first, so every row this closes stays visible there.
    """
    current = volume.version
    conn.execute(
        entries.update()
        .where(entries.c.volume_id == volume.id, entries.c.died.is_(None), entries.c.born > version)
        .values(died=current)
    )
    columns = [column for column in entries.c if column.name not in ("id", "born", "died")]
    revived = sa.select(*columns, sa.literal(current).label("born"), sa.null().label("died")).where(
        entries.c.volume_id == volume.id,
        visible_at(version),
        entries.c.died.is_not(None),
        entries.c.died <= current,
    )
    conn.execute(entries.insert().from_select([*(c.name for c in columns), "born", "died"], revived))
    files, dirs, size = conn.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(sa.case((entries.c.kind != KIND_DIR, 1), else_=0)), 0),
            sa.func.coalesce(
                sa.func.sum(
                    sa.case(
                        (sa.and_(entries.c.kind == KIND_DIR, entries.c.parent_ino != ROOT_PARENT), 1), else_=0
                    )
                ),
                0,
            ),
            sa.func.coalesce(sa.func.sum(sa.case((entries.c.kind != KIND_DIR, entries.c.size), else_=0)), 0),
        ).where(entries.c.volume_id == volume.id, entries.c.died.is_(None))
    ).one()
    conn.execute(
        volumes.update()
        .where(volumes.c.id == volume.id)
        .values(file_count=int(files), dir_count=int(dirs), logical_bytes=int(size), modified_at=now_ms)
    )


@dataclass(frozen=True)
class SnapshotSpace:
    logical_bytes: int  # all files the snapshot sees
    owned_bytes: int  # bytes of file bodies only this snapshot still reaches
    shared_bytes: int  # the rest: shared with the live volume or other snapshots


def snapshot_space(conn: Connection, snapshot: Snapshot) -> SnapshotSpace:
    seen = sa.select(entries.c.content_id).where(
        entries.c.volume_id == snapshot.volume_id,
        visible_at(snapshot.version),
        entries.c.content_id.is_not(None),
    )
    total = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(contents.c.size), 0)).where(contents.c.id.in_(seen))
    ).scalar_one()
    others = (
        conn.execute(
            sa.select(snapshots.c.version).where(
                snapshots.c.volume_id == snapshot.volume_id, snapshots.c.id != snapshot.id
            )
        )
        .scalars()
        .all()
    )
    elsewhere = sa.select(entries.c.content_id).where(
        entries.c.volume_id == snapshot.volume_id,
        entries.c.content_id.is_not(None),
        sa.or_(entries.c.died.is_(None), *(visible_at(int(version)) for version in others)),
    )
    owned = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(contents.c.size), 0)).where(
            contents.c.id.in_(seen), contents.c.id.not_in(elsewhere)
        )
    ).scalar_one()
    return SnapshotSpace(int(total), int(owned), int(total) - int(owned))
