"""File and directory operations of the service, read side: stat, list, walk, open, read.

Every method resolves the path, checks the principal's rights on the way and on the target,
and reports the access. The write side lives in ``service.writes``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection

from medfabric.blobstore.codec import Buffer
from medfabric.errors import InvalidInput, NotFound
from medfabric.fs import content as content_rows
from medfabric.fs.model import FileStat
from medfabric.fs.namespace import list_children
from medfabric.fs.reader import FileReader
from medfabric.service.access import READ, READDIR, require
from medfabric.service.paths import Located, entry_stat, locate, mount_point_stat, walk_checked
from medfabric.service.snapshots import list_snapshot_dir, snapshot_dir_stat
from medfabric.service.writes import FileWrites

if TYPE_CHECKING:
    from medfabric.service.fabric import Fabric


class FileService(FileWrites):
    """POSIX-like operations on the fabric's one namespace."""

    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric

    def stat(self, path: str) -> FileStat:
        with self.fabric.access("getattr", path) as note, self.fabric.catalog.read() as conn:
            located = locate(conn, path)
            note.target(located.volume)
            if located.snapshot_dir:
                return snapshot_dir_stat(conn, located)
            chain = walk_checked(conn, located, self.fabric.principal)
            return entry_stat(located, chain[-1])

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
        except NotFound:
            return False
        return True

    def listdir(self, path: str) -> list[FileStat]:
        with self.fabric.access("readdir", path) as note, self.fabric.catalog.read() as conn:
            located = locate(conn, path)
            note.target(located.volume)
            return self._list(conn, located)

    def _list(self, conn: Connection, located: Located) -> list[FileStat]:
        if located.snapshot_dir:
            return list_snapshot_dir(conn, located, self.fabric.principal)
        chain = walk_checked(conn, located, self.fabric.principal)
        directory = chain[-1]
        if not directory.is_dir:
            raise InvalidInput(f"{located.path} is not a directory")
        require(self.fabric.principal, located.volume, directory, READDIR, located.path)
        listing = {
            entry.name: entry_stat(located.child(entry.name), entry)
            for entry in list_children(conn, located.volume.id, directory.ino, located.version)
        }
        if located.version is None:
            for name, volume in located.mounts.mounts_in(located.components).items():
                listing[name] = mount_point_stat(conn, located.child(name), volume)
        return [listing[name] for name in sorted(listing)]

    def walk(self, path: str) -> Iterator[tuple[str, list[FileStat], list[FileStat]]]:
        """Like os.walk, top-down: (directory path, subdirectories, other entries)."""
        pending = [path]
        while pending:
            current = pending.pop(0)
            entries = self.listdir(current)
            directories = [entry for entry in entries if entry.type == "directory"]
            others = [entry for entry in entries if entry.type != "directory"]
            yield current, directories, others
            pending[0:0] = [entry.path for entry in directories]

    def open(self, path: str) -> FileReader:
        """A seekable reader of the file as it is now (later writes don't change what it reads)."""
        fabric = self.fabric
        with fabric.access("read", path) as note, fabric.catalog.read() as conn:
            located = locate(conn, path)
            note.target(located.volume)
            if located.snapshot_dir:
                raise InvalidInput(f"{path} is a directory")
            entry = walk_checked(conn, located, fabric.principal)[-1]
            if entry.is_dir:
                raise InvalidInput(f"{path} is a directory")
            if not entry.is_file:
                raise InvalidInput(f"{path} is a {(entry.kind == 'l' and 'symlink') or 'special file'}")
            require(fabric.principal, located.volume, entry, READ, path)
            parts, locations = (
                content_rows.load_located_extents(conn, located.volume.id, entry.content_id)
                if entry.content_id is not None
                else ([], {})
            )
        volume = located.volume
        policy = fabric.codec_policy(volume)

        def fetch(blob_id: bytes) -> Buffer:
            location = locations.get(blob_id)
            if location is None:
                raise NotFound(f"{path}: blob {blob_id.hex()[:16]}… is missing from the blob index")
            try:
                return fabric.store.read_blob(volume.id, blob_id, location, policy)
            except Exception:
                # Compaction may have moved the blob since the file was opened: look again once.
                with fabric.catalog.read() as again:
                    moved = content_rows.locate_blobs(again, volume.id, [content_rows.Extent(0, 0, blob_id)])
                if blob_id not in moved or moved[blob_id] == location:
                    raise
                locations[blob_id] = moved[blob_id]
                return fabric.store.read_blob(volume.id, blob_id, moved[blob_id], policy)

        return FileReader(parts, entry.size, fetch, fabric.store.io_pool, name=path)

    def read(self, path: str) -> bytes:
        with self.open(path) as reader:
            return reader.read()

    def readlink(self, path: str) -> str:
        with self.fabric.access("readlink", path) as note, self.fabric.catalog.read() as conn:
            located = locate(conn, path)
            note.target(located.volume)
            entry = walk_checked(conn, located, self.fabric.principal)[-1]
            if entry.target is None:
                raise InvalidInput(f"{path} is not a symbolic link")
            return entry.target
