"""The namespace: mounts, lookups at a version, and the writer that changes one volume.

Entries are keyed by (volume, parent inode, name) and visible in the version range
[born, died). A change made in the volume's open version to a row born in that same version
rewrites the row (no snapshot can see it); otherwise the old row is closed (died = version) and a
new one born, so every snapshot keeps seeing what it saw.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.catalog.engine import chunked
from medfabric.catalog.schema import contents, entries, extents, volumes
from medfabric.errors import InvalidInput, NotFound
from medfabric.fs.model import KIND_DIR, Entry, Volume
from medfabric.fs.paths import join_path

INO_BITS = 40  # inode = volume id << 40 | per-volume counter: unique across the fabric
ROOT_PARENT = 0
ROOT_NAME = ""


def make_ino(volume_id: int, counter: int) -> int:
    return (volume_id << INO_BITS) | counter


def volume_of_ino(ino: int) -> int:
    return ino >> INO_BITS


class MountTable:
    """Where each mounted volume sits in the one namespace."""

    def __init__(self, all_volumes: Iterable[Volume]) -> None:
        self.volumes = {volume.id: volume for volume in all_volumes}
        self.by_name = {volume.name: volume for volume in self.volumes.values()}
        self.by_path: dict[tuple[str, ...], Volume] = {}
        for volume in self.volumes.values():
            if volume.mounted and volume.mount_path is not None:
                self.by_path[mount_components(volume.mount_path)] = volume

    def resolve(self, components: tuple[str, ...]) -> tuple[Volume, tuple[str, ...]]:
        """The volume whose mount is the longest prefix of the path, and the rest of the path."""
        for cut in range(len(components), -1, -1):
            volume = self.by_path.get(components[:cut])
            if volume is not None:
                return volume, components[cut:]
        raise NotFound("no volume is mounted at / (the fabric has no root volume)")

    def mounts_in(self, components: tuple[str, ...]) -> dict[str, Volume]:
        """Volumes mounted directly inside the directory at ``components``."""
        depth = len(components) + 1
        return {
            path[-1]: volume
            for path, volume in self.by_path.items()
            if len(path) == depth and path[:-1] == components
        }

    def mounted_below(self, components: tuple[str, ...]) -> list[Volume]:
        return [
            volume
            for path, volume in self.by_path.items()
            if len(path) > len(components) and path[: len(components)] == components
        ]


def mount_components(mount_path: str) -> tuple[str, ...]:
    trimmed = mount_path.strip("/")
    return tuple(trimmed.split("/")) if trimmed else ()


def load_mounts(conn: Connection) -> MountTable:
    return MountTable(Volume.from_row(row) for row in conn.execute(sa.select(volumes)))


def visible_at(version: int | None, table: sa.FromClause = entries) -> sa.ColumnElement[bool]:
    if version is None:
        return table.c.died.is_(None)
    return sa.and_(table.c.born <= version, sa.or_(table.c.died.is_(None), table.c.died > version))


_ENTRY_COLUMNS = [entries.c[name] for name in Entry.__dataclass_fields__]


def lookup(
    conn: Connection, volume_id: int, parent_ino: int, name: str, version: int | None = None
) -> Entry | None:
    row = conn.execute(
        sa.select(*_ENTRY_COLUMNS).where(
            entries.c.volume_id == volume_id,
            entries.c.parent_ino == parent_ino,
            entries.c.name == name,
            visible_at(version),
        )
    ).first()
    return Entry.from_row(row) if row is not None else None


def get_by_ino(conn: Connection, volume_id: int, ino: int, version: int | None = None) -> Entry | None:
    row = conn.execute(
        sa.select(*_ENTRY_COLUMNS).where(
            entries.c.volume_id == volume_id, entries.c.ino == ino, visible_at(version)
        )
    ).first()
    return Entry.from_row(row) if row is not None else None


def list_children(conn: Connection, volume_id: int, dir_ino: int, version: int | None = None) -> list[Entry]:
    rows = conn.execute(
        sa.select(*_ENTRY_COLUMNS)
        .where(entries.c.volume_id == volume_id, entries.c.parent_ino == dir_ino, visible_at(version))
        .order_by(entries.c.name)
    )
    return [Entry.from_row(row) for row in rows]


def has_children(conn: Connection, volume_id: int, dir_ino: int) -> bool:
    return (
        conn.execute(
            sa.select(entries.c.ino)
            .where(
                entries.c.volume_id == volume_id, entries.c.parent_ino == dir_ino, entries.c.died.is_(None)
            )
            .limit(1)
        ).first()
        is not None
    )


def walk(
    conn: Connection, volume: Volume, components: tuple[str, ...], version: int | None = None
) -> list[Entry]:
    """The chain of entries from the volume's root to the last component (NotFound if absent), in
    one statement whatever the depth (a DICOM file lies six levels down: one round trip, not seven)."""
    sql, params = _walk_sql(conn.dialect.name, volume.id, volume.root_ino, components, version)
    chain = [Entry.from_row(row) for row in conn.exec_driver_sql(sql, params)]
    if not chain:
        raise NotFound(f"volume {volume.name} has no root directory")
    if len(chain) <= len(components):
        found = len(chain) - 1  # components resolved
        if not chain[-1].is_dir:
            raise InvalidInput(f"{_describe(volume, components[:found])} is not a directory")
        raise NotFound(f"{_describe(volume, components[: found + 1])}: no such file or directory")
    return chain


def _walk_sql(
    dialect: str, volume_id: int, root_ino: int, components: tuple[str, ...], version: int | None
) -> tuple[str, tuple[Any, ...]]:
    """The recursive query and its parameters: the root, then each component's entry under the one
    before it; a missing name, or a name under something that is not a directory, ends the chain.
    Plain SQL, made once per depth: building it as an expression costs more than running it."""
    sql = _walk_text(dialect, len(components), version is not None)
    visible: tuple[Any, ...] = (version, version) if version is not None else ()
    if not components:
        return sql, (volume_id, root_ino, *visible)
    return sql, (*components, volume_id, root_ino, *visible, volume_id, *visible)


@functools.lru_cache(maxsize=64)
def _walk_text(dialect: str, depth: int, snapshot: bool) -> str:
    mark = "%s" if dialect == "postgresql" else "?"
    columns = list(Entry.__dataclass_fields__)

    def visible(alias: str) -> str:
        if not snapshot:
            return f"{alias}.died IS NULL"
        return f"{alias}.born <= {mark} AND ({alias}.died IS NULL OR {alias}.died > {mark})"

    own = ", ".join(f"e.{name}" for name in columns)
    child = ", ".join(f"c.{name}" for name in columns)
    names = ", ".join(f"({number}, {mark})" for number in range(1, depth + 1))
    step = ""
    if depth:
        step = (
            f" UNION ALL SELECT n.depth, {child} FROM chain AS w JOIN names AS n ON n.depth = w.depth + 1"
            f" JOIN {entries.name} AS c ON c.volume_id = {mark} AND c.parent_ino = w.ino"
            f" AND c.name = n.name AND w.kind = '{KIND_DIR}' AND {visible('c')}"
        )
    head = f"names(depth, name) AS (VALUES {names}), " if depth else ""
    return (
        f"WITH RECURSIVE {head}chain(depth, {', '.join(columns)}) AS ("
        f"SELECT 0, {own} FROM {entries.name} AS e WHERE e.volume_id = {mark} AND e.ino = {mark}"
        f" AND {visible('e')}{step}) SELECT {', '.join(columns)} FROM chain ORDER BY depth"
    )


def _describe(volume: Volume, components: tuple[str, ...]) -> str:
    base = volume.mount_path or f"<volume {volume.name}>"
    return (base.rstrip("/") + join_path(components)) if components else base


@dataclass
class UsageDelta:
    logical_bytes: int = 0
    files: int = 0
    dirs: int = 0


class VolumeWriter:
    """All changes to one volume within one write transaction; its row is locked until commit.

    New rows are buffered and inserted together at ``finish`` (executemany); lookups through
    the writer see them.
    """

    def __init__(self, conn: Connection, volume_id: int, now_ns: int) -> None:
        row = conn.execute(sa.select(volumes).where(volumes.c.id == volume_id).with_for_update()).first()
        if row is None:
            raise NotFound(f"volume {volume_id} no longer exists")
        self.conn = conn
        self.volume = Volume.from_row(row)
        self.version = self.volume.version
        self.now_ns = now_ns
        self._next_counter = self.volume.next_ino
        self._pending: dict[tuple[int, str], Entry] = {}
        self._known: dict[tuple[int, str], Entry | None] = {}  # prefetched rows (None: absent)
        self._contents: list[dict[str, Any]] = []
        self._extents: list[dict[str, Any]] = []
        self._pending_by_ino: dict[int, Entry] = {}
        self._touched: dict[int, Entry] = {}
        self.delta = UsageDelta()

    # -- identifiers --

    def new_id(self) -> int:
        """A fabric-unique id (for inodes and contents) from the volume's counter."""
        counter = self._next_counter
        self._next_counter += 1
        return make_ino(self.volume.id, counter)

    # -- reads that see this transaction's own changes --

    def lookup(self, parent_ino: int, name: str) -> Entry | None:
        pending = self._pending.get((parent_ino, name))
        if pending is not None:
            return pending
        if parent_ino in self._pending_by_ino:
            return None  # a directory created in this transaction has only pending children
        key = (parent_ino, name)
        if key in self._known:
            return self._known[key]
        return lookup(self.conn, self.volume.id, parent_ino, name)

    def prefetch(self, parent_ino: int, names: Iterable[str]) -> None:
        """Look up many names of one directory in one query (batch writes)."""
        wanted = [name for name in dict.fromkeys(names) if (parent_ino, name) not in self._pending]
        if parent_ino in self._pending_by_ino or not wanted:
            return
        for part in chunked(wanted):
            found = {
                entry.name: entry
                for entry in (
                    Entry.from_row(row)
                    for row in self.conn.execute(
                        sa.select(*_ENTRY_COLUMNS).where(
                            entries.c.volume_id == self.volume.id,
                            entries.c.parent_ino == parent_ino,
                            entries.c.name.in_(part),
                            entries.c.died.is_(None),
                        )
                    )
                )
            }
            for name in part:
                self._known[(parent_ino, name)] = found.get(name)

    def add_content(self, content: dict[str, Any], extent_rows: list[dict[str, Any]]) -> None:
        """A file body's rows, inserted with the entries at ``finish``."""
        self._contents.append(content)
        self._extents.extend(extent_rows)

    def get(self, ino: int) -> Entry | None:
        return self._pending_by_ino.get(ino) or get_by_ino(self.conn, self.volume.id, ino)

    # -- changes --

    def create(
        self,
        *,
        parent_ino: int,
        name: str,
        kind: str,
        mode: int,
        owner: str,
        grp: str,
        size: int = 0,
        content_id: int | None = None,
        target: str | None = None,
        ino: int | None = None,
        mtime_ns: int | None = None,
        atime_ns: int | None = None,
        aces: str | None = None,
    ) -> Entry:
        now = self.now_ns
        entry = Entry(
            volume_id=self.volume.id,
            parent_ino=parent_ino,
            name=name,
            ino=ino if ino is not None else self.new_id(),
            kind=kind,
            mode=mode & 0o7777,
            owner=owner,
            grp=grp,
            size=size,
            mtime_ns=mtime_ns if mtime_ns is not None else now,
            ctime_ns=now,
            atime_ns=atime_ns if atime_ns is not None else now,
            content_id=content_id,
            target=target,
            born=self.version,
            died=None,
            aces=aces,
        )
        self._stage(entry)
        self._count(entry, +1)
        if parent_ino != ROOT_PARENT:
            self.touch_dir(parent_ino)
        return entry

    def retire(self, entry: Entry, *, touch_parent: bool = True) -> None:
        """The entry stops being visible in the open version."""
        self._known.pop((entry.parent_ino, entry.name), None)
        if self._pending.pop((entry.parent_ino, entry.name), None) is not None:
            self._pending_by_ino.pop(entry.ino, None)
        else:
            self._retire_row(entry)
        self._count(entry, -1)
        self._touched.pop(entry.ino, None)
        if touch_parent and entry.parent_ino != ROOT_PARENT:
            self.touch_dir(entry.parent_ino)

    def update(self, entry: Entry, **changes: Any) -> Entry:
        """A new version of the entry (same inode) with some attributes changed."""
        changes.setdefault("ctime_ns", self.now_ns)
        updated = replace(entry, born=self.version, died=None, **changes)
        moved = (updated.parent_ino, updated.name) != (entry.parent_ino, entry.name)
        self.retire(entry, touch_parent=moved)
        self._stage(updated)
        self._count(updated, +1)
        if moved and updated.parent_ino != ROOT_PARENT:
            self.touch_dir(updated.parent_ino)
        return updated

    def touch_dir(self, dir_ino: int) -> None:
        if dir_ino in self._touched:
            return
        entry = self.get(dir_ino)
        if entry is not None:
            self._touched[dir_ino] = entry

    def _stage(self, entry: Entry) -> None:
        self._known.pop((entry.parent_ino, entry.name), None)
        self._pending[(entry.parent_ino, entry.name)] = entry
        self._pending_by_ino[entry.ino] = entry

    def _retire_row(self, entry: Entry) -> None:
        where = (
            entries.c.volume_id == entry.volume_id,
            entries.c.ino == entry.ino,
            entries.c.parent_ino == entry.parent_ino,
            entries.c.name == entry.name,
            entries.c.died.is_(None),
        )
        if entry.born == self.version:
            self.conn.execute(entries.delete().where(*where))
        else:
            self.conn.execute(entries.update().where(*where).values(died=self.version))

    def _count(self, entry: Entry, sign: int) -> None:
        if entry.kind == KIND_DIR:
            self.delta.dirs += sign
        else:
            self.delta.files += sign
            self.delta.logical_bytes += sign * entry.size

    @property
    def projected_logical_bytes(self) -> int:
        return self.volume.logical_bytes + self.delta.logical_bytes

    def finish(self) -> Volume:
        """Write the buffered rows and the volume's counters; return the volume as it now is."""
        for ino, directory in list(self._touched.items()):
            if directory.mtime_ns == self.now_ns:
                continue
            current = self._pending_by_ino.get(ino, directory)
            refreshed = replace(current, mtime_ns=self.now_ns, ctime_ns=self.now_ns)
            if ino in self._pending_by_ino:
                self._stage(refreshed)
            elif current.born == self.version:
                self.conn.execute(
                    entries.update()
                    .where(
                        entries.c.volume_id == current.volume_id,
                        entries.c.ino == ino,
                        entries.c.died.is_(None),
                    )
                    .values(mtime_ns=self.now_ns, ctime_ns=self.now_ns)
                )
            else:
                self._retire_row(current)
                self._stage(replace(refreshed, born=self.version))
        self._touched.clear()
        if self._contents:
            self.conn.execute(contents.insert(), self._contents)
            if self._extents:
                self.conn.execute(extents.insert(), self._extents)
            self._contents, self._extents = [], []
        if self._pending:
            self.conn.execute(
                entries.insert(),
                [
                    {name: getattr(entry, name) for name in Entry.__dataclass_fields__}
                    for entry in self._pending.values()
                ],
            )
            self._pending.clear()
            self._pending_by_ino.clear()
        delta = self.delta
        values: dict[str, Any] = {"next_ino": self._next_counter}
        if delta.logical_bytes or delta.files or delta.dirs:
            values.update(
                logical_bytes=volumes.c.logical_bytes + delta.logical_bytes,
                file_count=volumes.c.file_count + delta.files,
                dir_count=volumes.c.dir_count + delta.dirs,
                modified_at=self.now_ns // 1_000_000,
            )
        self.conn.execute(volumes.update().where(volumes.c.id == self.volume.id).values(**values))
        self.volume = replace(
            self.volume,
            next_ino=self._next_counter,
            logical_bytes=self.volume.logical_bytes + delta.logical_bytes,
            file_count=self.volume.file_count + delta.files,
            dir_count=self.volume.dir_count + delta.dirs,
        )
        self.delta = UsageDelta()
        return self.volume
