"""The mirror end of a sync, in the catalog: the mirror's row, staging pages, the atomic commit.

Staged rows are invisible: they sit in the mirror_stage_* tables until ``commit`` moves them
into the namespace in the same transaction that records the new synced version, so a reader of
the mirror sees the old state or the new one. Source ids are translated to the mirror volume's
(``volume id << 40 | counter`` keeps the counter), so inode numbers stay stable across syncs.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.catalog.engine import chunked, insert_ignoring_duplicates
from medfabric.catalog.schema import (
    blobs,
    contents,
    entries,
    extents,
    mirror_stage_contents,
    mirror_stage_entries,
    mirror_stage_extents,
    mirrors,
    volumes,
)
from medfabric.errors import Conflict
from medfabric.fs.content import load_extents
from medfabric.fs.model import KIND_DIR, Volume
from medfabric.fs.namespace import INO_BITS, ROOT_PARENT, make_ino
from medfabric.fs.snapshots import lock_volume
from medfabric.replication.mirror_state import MirrorRow, clear_staging, update_mirror
from medfabric.replication.transport import ChangePage, CommitResult, ContentRow, SyncTicket

COUNTER_MASK = (1 << INO_BITS) - 1
_STAGED_ENTRY = [c.name for c in mirror_stage_entries.c if c.name not in ("id", "volume_id", "op")]


def local_id(value: int | None, volume_id: int) -> int | None:
    """A source inode or content id as the mirror volume numbers it (0 and None stay)."""
    if value is None or value == ROOT_PARENT:
        return value
    return make_ino(volume_id, value & COUNTER_MASK)


def check_ticket(row: MirrorRow, ticket: SyncTicket) -> None:
    if row.owner != ticket.owner or row.pending_snapshot != ticket.snapshot:
        raise Conflict(
            f"mirror volume {ticket.volume}: the sync of {ticket.snapshot} is no longer this one's "
            "(another process took it over, or it was stopped)"
        )


def stage_page(
    conn: Connection, volume: Volume, row: MirrorRow, ticket: SyncTicket, page: ChangePage
) -> bool:
    """Stage a page's rows (translated) and advance the resume point; True if a stop was asked."""
    check_ticket(row, ticket)
    if ticket.version is not None and row.pending_version not in (None, ticket.version):
        raise Conflict(f"mirror volume {ticket.volume}: the sync's source version changed under it")
    if page.cursor < row.staged_through:
        raise Conflict(f"mirror volume {ticket.volume}: page starts before the staged rows")
    _stage_contents(conn, volume, page)
    if page.entries:
        conn.execute(
            mirror_stage_entries.insert(),
            [
                {
                    "volume_id": volume.id,
                    "op": item.op,
                    "parent_ino": local_id(item.parent_ino, volume.id),
                    "name": item.name,
                    "ino": local_id(item.ino, volume.id),
                    "kind": item.kind,
                    "mode": item.mode,
                    "owner": item.owner,
                    "grp": item.grp,
                    "size": item.size,
                    "mtime_ns": item.mtime_ns,
                    "ctime_ns": item.ctime_ns,
                    "atime_ns": item.atime_ns,
                    "content_id": local_id(item.content_id, volume.id),
                    "target": item.target,
                    "aces": item.aces,
                }
                for item in page.entries
            ],
        )
    update_mirror(
        conn,
        volume.id,
        staged_through=page.cursor,
        pending_version=ticket.version,
        rows_staged=mirrors.c.rows_staged + len(page.entries),
    )
    return row.stop_requested


def _stage_contents(conn: Connection, volume: Volume, page: ChangePage) -> None:
    """Stage bodies under the mirror's numbering; a body whose id the mirror already uses for
    different bytes (after a failback) gets a fresh id from the mirror volume's counter."""
    wanted = {local_id(body.id, volume.id): body for body in page.contents}
    ids = [source_id for source_id in wanted if source_id is not None]
    staged: set[int] = set()
    existing: dict[int, tuple[int, bytes | None]] = {}
    for part in chunked(ids):
        staged.update(
            int(source_id)
            for (source_id,) in conn.execute(
                sa.select(mirror_stage_contents.c.source_id).where(
                    mirror_stage_contents.c.volume_id == volume.id,
                    mirror_stage_contents.c.source_id.in_(part),
                )
            )
        )
        existing.update(
            (int(content_id), (int(size), None if digest is None else bytes(digest)))
            for content_id, size, digest in conn.execute(
                sa.select(contents.c.id, contents.c.size, contents.c.digest).where(contents.c.id.in_(part))
            )
        )
    rows: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for source_id in ids:
        body = wanted[source_id]
        if source_id in staged:
            continue
        target_id = source_id
        if source_id in existing and not _same_body(conn, existing[source_id], source_id, body):
            counter = lock_volume(conn, volume.id).next_ino
            conn.execute(volumes.update().where(volumes.c.id == volume.id).values(next_ino=counter + 1))
            target_id = make_ino(volume.id, counter)
        rows.append(
            {
                "volume_id": volume.id,
                "source_id": source_id,
                "id": target_id,
                "size": body.size,
                "digest": body.digest,
                "created_at": body.created_at,
            }
        )
        parts.extend(
            {
                "volume_id": volume.id,
                "content_id": source_id,
                "seq": extent.seq,
                "file_offset": extent.file_offset,
                "length": extent.length,
                "blob_id": extent.blob_id,
                "blob_offset": extent.blob_offset,
            }
            for extent in body.extents
        )
    insert_ignoring_duplicates(conn, mirror_stage_contents, rows)
    insert_ignoring_duplicates(conn, mirror_stage_extents, parts)


def _same_body(
    conn: Connection, existing: tuple[int, bytes | None], content_id: int, body: ContentRow
) -> bool:
    if existing != (body.size, body.digest):
        return False
    mine = [(e.file_offset, e.length, e.blob_id, e.blob_offset) for e in load_extents(conn, content_id)]
    theirs = [(e.file_offset, e.length, e.blob_id, e.blob_offset) for e in body.extents]
    return mine == theirs


def commit(
    conn: Connection, volume: Volume, row: MirrorRow, ticket: SyncTicket, source_next: int, now_ms: int
) -> CommitResult:
    """Make the staged state the mirror's state, in the caller's (one) transaction."""
    check_ticket(row, ticket)
    if ticket.version is None or row.pending_version != ticket.version or ticket.full != row.pending_full:
        raise Conflict(f"mirror volume {ticket.volume}: nothing complete is staged to commit")
    locked = lock_volume(conn, volume.id)
    version = locked.version
    vid = volume.id
    staged = mirror_stage_entries
    removed = _close_rows(conn, vid, version, full=ticket.full)
    missing = conn.execute(
        sa.select(sa.func.count())
        .select_from(mirror_stage_extents)
        .where(
            mirror_stage_extents.c.volume_id == vid,
            mirror_stage_extents.c.blob_id.is_not(None),
            ~sa.exists().where(blobs.c.volume_id == vid, blobs.c.blob_id == mirror_stage_extents.c.blob_id),
        )
    ).scalar_one()
    if missing:
        raise Conflict(f"mirror volume {ticket.volume}: {missing} staged blobs are gone (collected?): resend")
    body = mirror_stage_contents
    absent = ~sa.exists().where(contents.c.id == body.c.id)
    conn.execute(
        extents.insert().from_select(
            ["content_id", "seq", "file_offset", "length", "blob_id", "blob_offset"],
            sa.select(
                body.c.id,
                mirror_stage_extents.c.seq,
                mirror_stage_extents.c.file_offset,
                mirror_stage_extents.c.length,
                mirror_stage_extents.c.blob_id,
                mirror_stage_extents.c.blob_offset,
            )
            .join(
                body,
                sa.and_(body.c.volume_id == vid, body.c.source_id == mirror_stage_extents.c.content_id),
            )
            .where(mirror_stage_extents.c.volume_id == vid, absent),
        )
    )
    conn.execute(
        contents.insert().from_select(
            ["id", "volume_id", "size", "digest", "created_at"],
            sa.select(body.c.id, sa.literal(vid), body.c.size, body.c.digest, body.c.created_at).where(
                body.c.volume_id == vid, absent
            ),
        )
    )
    mapped = sa.select(body.c.id).where(body.c.volume_id == vid, body.c.source_id == staged.c.content_id)
    columns = [staged.c[name] for name in _STAGED_ENTRY if name != "content_id"]
    conn.execute(
        entries.insert().from_select(
            ["volume_id", *(c.name for c in columns), "content_id", "born", "died"],
            sa.select(
                sa.literal(vid),
                *columns,
                sa.func.coalesce(mapped.scalar_subquery(), staged.c.content_id),
                sa.literal(version),
                sa.null(),
            ).where(staged.c.volume_id == vid, staged.c.op == "add"),
        )
    )
    conn.execute(
        blobs.update()
        .where(
            blobs.c.volume_id == vid,
            blobs.c.orphaned_at.is_not(None),
            blobs.c.blob_id.in_(
                sa.select(mirror_stage_extents.c.blob_id).where(mirror_stage_extents.c.volume_id == vid)
            ),
        )
        .values(orphaned_at=None)
    )
    added = _counts(conn, vid, "add")
    dropped = _counts(conn, vid, "drop")
    base = (0, 0, 0) if ticket.full else (locked.file_count, locked.dir_count, locked.logical_bytes)
    conn.execute(
        volumes.update()
        .where(volumes.c.id == vid)
        .values(
            file_count=base[0] + added[0] - dropped[0],
            dir_count=base[1] + added[1] - dropped[1],
            logical_bytes=base[2] + added[2] - dropped[2],
            next_ino=max(locked.next_ino, source_next),
            modified_at=now_ms,
        )
    )
    previous = row.synced_snapshot if row.synced_snapshot != ticket.snapshot else None
    update_mirror(
        conn,
        vid,
        state="idle",
        owner=None,
        synced_snapshot=ticket.snapshot,
        synced_version=ticket.version,
        synced_at=now_ms,
        stale_snapshot=previous or row.stale_snapshot,
        pending_snapshot=None,
        pending_version=None,
        pending_full=False,
        staged_through=0,
        last_error=None,
        last_duration_ms=now_ms - (row.started_at or now_ms),
    )
    rows_added = conn.execute(
        sa.select(sa.func.count()).select_from(staged).where(staged.c.volume_id == vid, staged.c.op == "add")
    ).scalar_one()
    clear_staging(conn, vid)
    return CommitResult(int(rows_added), removed, ticket.snapshot, ticket.version)


def _close_rows(conn: Connection, volume_id: int, version: int, *, full: bool) -> int:
    """End the rows the new state no longer has (all live rows for a full sync)."""
    if full:
        closed = conn.execute(
            entries.update()
            .where(entries.c.volume_id == volume_id, entries.c.died.is_(None), entries.c.born < version)
            .values(died=version)
        ).rowcount
        deleted = conn.execute(
            entries.delete().where(
                entries.c.volume_id == volume_id, entries.c.died.is_(None), entries.c.born == version
            )
        ).rowcount
        return int(closed) + int(deleted)
    removed = 0
    drops = conn.execute(
        sa.select(
            mirror_stage_entries.c.parent_ino, mirror_stage_entries.c.name, mirror_stage_entries.c.ino
        ).where(mirror_stage_entries.c.volume_id == volume_id, mirror_stage_entries.c.op == "drop")
    ).all()
    for parent_ino, name, ino in drops:
        same = (
            entries.c.volume_id == volume_id,
            entries.c.parent_ino == parent_ino,
            entries.c.name == name,
            entries.c.ino == ino,
            entries.c.died.is_(None),
        )
        matched = conn.execute(
            entries.update().where(*same, entries.c.born < version).values(died=version)
        ).rowcount
        if matched == 0:
            matched = conn.execute(entries.delete().where(*same, entries.c.born == version)).rowcount
        if matched != 1:
            raise Conflict(
                f"the mirror no longer matches the state it last synced ({name!r} is not where the "
                "source had it): it needs a full sync"
            )
        removed += 1
    return removed


def _counts(conn: Connection, volume_id: int, op: str) -> tuple[int, int, int]:
    staged = mirror_stage_entries
    is_dir = staged.c.kind == KIND_DIR
    files, dirs, size = conn.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(sa.case((is_dir, 0), else_=1)), 0),
            sa.func.coalesce(
                sa.func.sum(sa.case((sa.and_(is_dir, staged.c.parent_ino != ROOT_PARENT), 1), else_=0)), 0
            ),
            sa.func.coalesce(sa.func.sum(sa.case((is_dir, 0), else_=staged.c.size)), 0),
        ).where(staged.c.volume_id == volume_id, staged.c.op == op)
    ).one()
    return int(files), int(dirs), int(size)
