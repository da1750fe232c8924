"""Resolving fabric paths for the service: which volume, which entry, at which version.

Read-side helpers shared by the file operations: locating a path in the mount table, walking
it with the traversal checks, and describing entries as ``FileStat``.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.catalog.schema import snapshots
from medfabric.errors import NotFound
from medfabric.fs.model import KIND_NAMES, Entry, FileStat, Volume
from medfabric.fs.namespace import MountTable, load_mounts, mount_components, walk
from medfabric.fs.paths import join_path, split_path
from medfabric.service.access import Principal, require_traverse

SNAPSHOT_DIR = ".snapshot"


@dataclass(frozen=True)
class Located:
    """A path resolved to a volume and the components inside it."""

    path: str
    components: tuple[str, ...]
    mounts: MountTable
    volume: Volume
    inside: tuple[str, ...]
    version: int | None = None  # a snapshot's version, or None for the live volume
    snapshot: str | None = None  # the snapshot's name, when the path is inside one
    snapshot_dir: bool = False  # the path is <mount>/.snapshot itself

    @property
    def is_volume_root(self) -> bool:
        return not self.inside

    @property
    def is_live(self) -> bool:
        """False for anything under <mount>/.snapshot: read-only, whatever the volume."""
        return self.version is None and not self.snapshot_dir

    def child(self, name: str) -> Located:
        return Located(
            self.path.rstrip("/") + "/" + name,
            (*self.components, name),
            self.mounts,
            self.volume,
            (*self.inside, name),
            self.version,
            self.snapshot,
        )


def locate(conn: Connection, path: str, mounts: MountTable | None = None) -> Located:
    """Resolve a path; ``<mount>/.snapshot/<name>/…`` resolves into the snapshot's version."""
    components = split_path(path)
    table = mounts if mounts is not None else load_mounts(conn)
    volume, inside = table.resolve(components)
    normalized = join_path(components)
    if inside and inside[0] == SNAPSHOT_DIR:
        if len(inside) == 1:
            return Located(normalized, components, table, volume, (), snapshot_dir=True)
        version = conn.execute(
            sa.select(snapshots.c.version).where(
                snapshots.c.volume_id == volume.id, snapshots.c.name == inside[1]
            )
        ).scalar()
        if version is None:
            raise NotFound(f"{normalized}: volume {volume.name} has no snapshot {inside[1]!r}")
        return Located(normalized, components, table, volume, inside[2:], int(version), inside[1])
    return Located(normalized, components, table, volume, inside)


def walk_checked(conn: Connection, located: Located, principal: Principal) -> list[Entry]:
    """The entries from the volume root to the path, checking that each directory is searchable."""
    chain = walk(conn, located.volume, located.inside, located.version)
    require_traverse(principal, located.volume, chain, located.path)
    return chain


def entry_stat(located: Located, entry: Entry) -> FileStat:
    name = located.components[-1] if located.components else "/"
    return FileStat(
        path=located.path,
        name=name,
        type=KIND_NAMES[entry.kind],
        mode=entry.st_mode,
        size=entry.size,
        owner=entry.owner,
        group=entry.grp,
        mtime_ns=entry.mtime_ns,
        ctime_ns=entry.ctime_ns,
        atime_ns=entry.atime_ns,
        ino=entry.ino,
        volume=located.volume.name,
        nlink=2 if entry.is_dir else 1,
        target=entry.target,
        is_mount_point=located.is_volume_root,
    )


def mount_point_stat(conn: Connection, located: Located, volume: Volume) -> FileStat:
    """The stat of a volume mounted inside a directory: its root directory."""
    inner = Located(located.path, mount_components(volume.mount_path or "/"), located.mounts, volume, ())
    root = walk(conn, volume, ())[0]
    return entry_stat(inner, root)


def require_found(entry: Entry | None, path: str) -> Entry:
    if entry is None:
        raise NotFound(f"{path}: no such file or directory")
    return entry
