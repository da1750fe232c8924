"""A mirror volume's relationship to its source, and the state of its sync, in the catalog.

One row per mirror volume (``mirrors``): where the source is, which source snapshot the mirror
shows, and the sync in progress (who drives it, which source snapshot it brings over, how far it
has staged). Claiming and releasing a sync happen here, inside the caller's transaction.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.catalog.schema import (
    mirror_stage_contents,
    mirror_stage_entries,
    mirror_stage_extents,
    mirrors,
)
from medfabric.errors import Conflict, NotFound
from medfabric.fs.model import Volume
from medfabric.replication.transport import SourceSpec, SyncTicket


@dataclass(frozen=True)
class MirrorRow:
    volume_id: int
    volume_created_at: int
    source: SourceSpec
    state: str
    owner: str | None
    stop_requested: bool
    synced_snapshot: str | None
    synced_version: int | None
    synced_at: int | None
    stale_snapshot: str | None
    pending_snapshot: str | None
    pending_version: int | None
    pending_full: bool
    staged_through: int
    started_at: int | None
    last_duration_ms: int | None
    last_error: str | None
    blobs_sent: int
    bytes_sent: int
    rows_staged: int


def mirror_row(conn: Connection, volume: Volume) -> MirrorRow | None:
    """The volume's mirror row, if it has one that belongs to it (not to an earlier volume that
    had the same id)."""
    row = conn.execute(sa.select(mirrors).where(mirrors.c.volume_id == volume.id)).first()
    if row is None or int(row.volume_created_at) != volume.created_at:
        return None
    m = row._mapping
    source = SourceSpec(
        m["source_location"],
        m["source_remote"],
        str(m["source_fabric_id"]),
        str(m["source_fabric_name"]),
        str(m["source_volume"]),
        int(m["source_volume_id"]),
        str(m["blob_scheme"]),
    )
    return MirrorRow(
        volume.id,
        int(m["volume_created_at"]),
        source,
        *(m[name] for name in list(MirrorRow.__dataclass_fields__)[3:]),
    )


def record_source(conn: Connection, volume: Volume, source: SourceSpec) -> None:
    """Make ``volume`` a mirror of ``source``; its first sync is a full one."""
    conn.execute(mirrors.delete().where(mirrors.c.volume_id == volume.id))
    clear_staging(conn, volume.id)
    conn.execute(
        mirrors.insert().values(
            volume_id=volume.id,
            volume_created_at=volume.created_at,
            source_location=source.location,
            source_remote=source.remote,
            source_fabric_id=source.fabric_id,
            source_fabric_name=source.fabric_name,
            source_volume=source.volume,
            source_volume_id=source.volume_id,
            blob_scheme=source.blob_scheme,
            state="idle",
            owner=None,
            stop_requested=False,
            pending_full=False,
            staged_through=0,
            blobs_sent=0,
            bytes_sent=0,
            rows_staged=0,
        )
    )


def forget_synced_state(conn: Connection, volume_id: int) -> None:
    """The mirror no longer matches what it synced (it was promoted): the next sync is full."""
    conn.execute(
        mirrors.update()
        .where(mirrors.c.volume_id == volume_id)
        .values(synced_version=None, pending_snapshot=None, pending_version=None, staged_through=0)
    )
    clear_staging(conn, volume_id)


def update_mirror(conn: Connection, volume_id: int, **values: Any) -> None:
    conn.execute(mirrors.update().where(mirrors.c.volume_id == volume_id).values(**values))


def clear_staging(conn: Connection, volume_id: int) -> None:
    for table in (mirror_stage_entries, mirror_stage_contents, mirror_stage_extents):
        conn.execute(table.delete().where(table.c.volume_id == volume_id))


def require_mirror(conn: Connection, volume: Volume) -> MirrorRow:
    row = mirror_row(conn, volume)
    if row is None:
        raise NotFound(
            f"volume {volume.name} has no source to mirror (create it with -type mirror -source VOL@FABRIC)"
        )
    return row


def owner_is_gone(owner: str | None) -> bool:
    """A sync may be taken over if nobody drives it, or its driver on this host has exited."""
    if owner is None:
        return True
    host, _, rest = owner.partition(":")
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(rest.split(":")[0]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def claim(
    conn: Connection, volume: Volume, row: MirrorRow, owner: str, *, full: bool, snapshot: str, now_ms: int
) -> SyncTicket:
    """Take the mirror for a sync: resume the unfinished one (same source snapshot, same resume
    point) or start the next one, named ``snapshot``. Conflict if a live process drives it."""
    if row.owner is not None and row.owner != owner and not owner_is_gone(row.owner):
        raise Conflict(f"mirror volume {volume.name} is being synced by {row.owner}")
    earlier = row.pending_snapshot is not None  # an unfinished sync's source snapshot exists
    resume = earlier and (row.pending_full or not full)
    since = 0 if full or row.synced_version is None else row.synced_version
    if resume:
        assert row.pending_snapshot is not None
        snapshot = row.pending_snapshot
        since = 0 if row.pending_full else int(row.synced_version or 0)
        update_mirror(conn, volume.id, owner=owner, state="syncing", stop_requested=False, last_error=None)
    else:
        # A restarted sync keeps its source snapshot: it may exist at the source already.
        snapshot = row.pending_snapshot or snapshot
        clear_staging(conn, volume.id)
        update_mirror(
            conn,
            volume.id,
            owner=owner,
            state="syncing",
            stop_requested=False,
            pending_snapshot=snapshot,
            pending_version=None,
            pending_full=since == 0,
            staged_through=0,
            started_at=now_ms,
            last_error=None,
            blobs_sent=0,
            bytes_sent=0,
            rows_staged=0,
        )
    return SyncTicket(
        volume.name,
        owner,
        row.source,
        snapshot,
        row.pending_version if resume else None,
        since,
        row.staged_through if resume else 0,
        row.synced_snapshot,
        row.stale_snapshot,
        earlier,
    )


def release(
    conn: Connection, volume: Volume, ticket: SyncTicket, *, error: str | None, restart: bool
) -> None:
    """End this driver's hold on the sync; what it staged stays for the next one unless ``restart``
    (which keeps only the name of the source snapshot, so the next sync reuses it)."""
    row = mirror_row(conn, volume)
    if row is None or row.owner != ticket.owner:
        return
    values: dict[str, Any] = {"owner": None, "last_error": error}
    values["state"] = "failed" if error else ("stopped" if row.stop_requested else "idle")
    if restart:
        clear_staging(conn, volume.id)
        values.update(pending_version=None, pending_full=False, staged_through=0)
    update_mirror(conn, volume.id, **values)


def mirrors_of(conn: Connection, fabric_id: str, volume_id: int) -> list[int]:
    """Ids of this fabric's mirror volumes whose source is that volume of that fabric."""
    return [
        int(vid)
        for (vid,) in conn.execute(
            sa.select(mirrors.c.volume_id).where(
                mirrors.c.source_fabric_id == fabric_id, mirrors.c.source_volume_id == volume_id
            )
        )
    ]
