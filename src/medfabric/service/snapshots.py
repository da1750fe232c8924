"""Snapshots of the service: create, list, remove, preserve, restore; the `.snapshot` directory.

Snapshots are read-only, point-in-time images of a whole volume, created in O(1). Restore rolls
the volume back after taking a safety snapshot, so nothing newer is lost for good.
"""

from __future__ import annotations

import builtins
import re
import stat as statmod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from medfabric.errors import Conflict, InvalidInput, NotFound
from medfabric.fs import snapshots as snapshot_rows
from medfabric.fs import volumes as volume_rows
from medfabric.fs.model import FileStat
from medfabric.fs.namespace import walk
from medfabric.fs.snapshots import ChangeSummary, Snapshot, SnapshotSpace
from medfabric.service.access import Principal, require_volume
from medfabric.service.paths import Located, entry_stat
from medfabric.units import parse_duration_ms

if TYPE_CHECKING:
    from medfabric.service.fabric import Fabric

SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._:-]{0,254}$")


@dataclass(frozen=True)
class RestoreResult:
    snapshot: str
    safety_snapshot: str
    discarded: ChangeSummary


def _check_name(name: str) -> str:
    if not SNAPSHOT_NAME.match(name or "") or name in (".", ".."):
        raise InvalidInput(f"invalid snapshot name {name!r}: letters, digits and . _ : - (up to 255)")
    return name


class SnapshotService:
    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric

    def create(
        self, volume: str, name: str, *, retain: str | None = None, expires_at: int | None = None
    ) -> Snapshot:
        """A snapshot of the whole volume now; ``retain`` (e.g. ``7d``) sets when it expires."""
        fabric = self.fabric
        with fabric.access("snapshot create", volume=volume) as note:
            _check_name(name)
            now = fabric.clock.now_ms()
            if retain is not None:
                expires_at = now + parse_duration_ms(retain, what="retention")
            with fabric.catalog.write() as conn:
                found = volume_rows.get_volume(conn, volume)
                require_volume(fabric.principal, found, "m", "create snapshots")
                snapshot = snapshot_rows.create_snapshot(
                    conn, found.id, name, owner=fabric.principal.name, now_ms=now, expires_at=expires_at
                )
            note.detail = f"snapshot {name} at version {snapshot.version}"
            return snapshot

    def list(self, volume: str | None = None) -> list[Snapshot]:
        with self.fabric.access("snapshot list", volume=volume), self.fabric.catalog.read() as conn:
            volume_id = volume_rows.get_volume(conn, volume).id if volume is not None else None
            return snapshot_rows.list_snapshots(conn, volume_id)

    def get(self, volume: str, name: str) -> Snapshot:
        with self.fabric.catalog.read() as conn:
            return self._find(conn, volume, name)

    def _find(
        self, conn: Connection, volume: str, name: str, *, code: str | None = None, action: str = ""
    ) -> Snapshot:
        found = volume_rows.get_volume(conn, volume)
        if code is not None:
            require_volume(self.fabric.principal, found, code, action)
        snapshot = snapshot_rows.find_snapshot(conn, found.id, name)
        if snapshot is None:
            raise NotFound(f"volume {volume} has no snapshot {name!r}")
        return snapshot

    def space(self, volume: str, name: str) -> SnapshotSpace:
        with self.fabric.catalog.read() as conn:
            return snapshot_rows.snapshot_space(conn, self._find(conn, volume, name))

    def describe(self, snapshot: Snapshot, *, with_space: bool = True) -> dict[str, Any]:
        with self.fabric.catalog.read() as conn:
            volume = volume_rows.get_volume_by_id(conn, snapshot.volume_id)
            space = snapshot_rows.snapshot_space(conn, snapshot) if with_space else None
        document: dict[str, Any] = {
            "snapshotname": snapshot.name,
            "snapshotid": snapshot.id,
            "volumename": volume.name,
            "volumeid": volume.id,
            "volumepath": volume.mount_path,
            "version": snapshot.version,
            "creationtime": snapshot.created_at,
            "expirytime": snapshot.expires_at,
            "preserved": snapshot.preserved,
            "owner": snapshot.owner,
        }
        if space is not None:
            document.update(
                logicalsize=space.logical_bytes, ownedsize=space.owned_bytes, sharedsize=space.shared_bytes
            )
        return document

    def remove(self, volume: str, name: str) -> None:
        fabric = self.fabric
        with fabric.access("snapshot remove", volume=volume) as note:
            note.detail = f"snapshot {name}"
            with fabric.catalog.write() as conn:
                snapshot = self._find(conn, volume, name, code="d", action="remove snapshots")
                snapshot_rows.delete_snapshot(conn, snapshot)

    def preserve(self, volume: str, name: str, *, preserved: bool = True) -> Snapshot:
        """A preserved snapshot never expires."""
        fabric = self.fabric
        with fabric.access("snapshot preserve", volume=volume), fabric.catalog.write() as conn:
            snapshot = self._find(conn, volume, name, code="m", action="preserve snapshots")
            snapshot_rows.set_preserved(conn, snapshot, preserved)
            return self._find(conn, volume, name)

    def changes(self, volume: str, name: str) -> ChangeSummary:
        """What a restore of this snapshot would discard from the live volume."""
        with self.fabric.catalog.read() as conn:
            snapshot = self._find(conn, volume, name)
            return snapshot_rows.changes_since(conn, snapshot.volume_id, snapshot.version)

    def restore(self, volume: str, name: str, *, force: bool = False) -> RestoreResult:
        """Roll the volume back to the snapshot, after a safety snapshot of its present state.

        If the volume changed since the snapshot, ``force`` is required (nothing is lost for good:
        the safety snapshot keeps the discarded state).
        """
        fabric = self.fabric
        with fabric.access("snapshot restore", volume=volume) as note:
            now = fabric.clock.now_ms()
            with fabric.catalog.write() as conn:
                snapshot = self._find(conn, volume, name, code="restore", action="restore snapshots")
                summary = snapshot_rows.changes_since(conn, snapshot.volume_id, snapshot.version)
                if summary.changed and not force:
                    raise Conflict(
                        f"volume {volume} changed since snapshot {name}: a restore discards "
                        f"{summary.added} new and brings back {summary.removed} removed or changed "
                        "entries (they stay in a safety snapshot); repeat with -force"
                    )
                safety = f"{name}.restore-safety.{now}"
                snapshot_rows.create_snapshot(
                    conn, snapshot.volume_id, safety, owner=fabric.principal.name, now_ms=now, expires_at=None
                )
                locked = snapshot_rows.lock_volume(conn, snapshot.volume_id)
                snapshot_rows.roll_back(conn, locked, snapshot.version, now)
            note.detail = f"restored {name}; safety snapshot {safety}"
            return RestoreResult(name, safety, summary)

    def expire(self) -> builtins.list[str]:
        """Remove every snapshot whose retention has passed and that is not preserved."""
        fabric = self.fabric
        now = fabric.clock.now_ms()
        removed: builtins.list[str] = []
        with fabric.access("snapshot expire"), fabric.catalog.write() as conn:
            for snapshot in snapshot_rows.list_snapshots(conn):
                if snapshot.expires_at is not None and snapshot.expires_at <= now and not snapshot.preserved:
                    snapshot_rows.delete_snapshot(conn, snapshot)
                    removed.append(f"{snapshot.volume_id}:{snapshot.name}")
        return removed


def snapshot_dir_stat(conn: Connection, located: Located) -> FileStat:
    """``<mount>/.snapshot``: a read-only directory listing the volume's snapshots."""
    root = walk(conn, located.volume, ())[0]
    return FileStat(
        path=located.path,
        name=".snapshot",
        type="directory",
        mode=statmod.S_IFDIR | 0o555,
        size=0,
        owner=root.owner,
        group=root.grp,
        mtime_ns=root.mtime_ns,
        ctime_ns=root.ctime_ns,
        atime_ns=root.atime_ns,
        ino=root.ino,
        volume=located.volume.name,
        nlink=2,
    )


def list_snapshot_dir(conn: Connection, located: Located, principal: Principal) -> list[FileStat]:
    listing: list[FileStat] = []
    for snapshot in snapshot_rows.list_snapshots(conn, located.volume.id):
        inner = Located(
            located.path.rstrip("/") + "/" + snapshot.name,
            (*located.components, snapshot.name),
            located.mounts,
            located.volume,
            (),
            snapshot.version,
            snapshot.name,
        )
        chain = walk(conn, located.volume, (), snapshot.version)
        listing.append(entry_stat(inner, chain[0]))
    del principal
    return sorted(listing, key=lambda item: item.name)
