"""File and directory operations of the service, write side.

Bytes go to the blob store first; then one catalog transaction checks everything again
(read-only state, names, rights, quota) and commits the namespace rows and the blob rows
together. A failed check rolls back the rows; the blobs it wrote are garbage for GC.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from sqlalchemy.engine import Connection

from medfabric import alarms as alarm_rows
from medfabric.errors import (
    Conflict,
    InvalidInput,
    MedfabricError,
    NotEmpty,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    ReadOnly,
)
from medfabric.fs import content as content_rows
from medfabric.fs.content import ContentBuilder, Extent, PreparedContent
from medfabric.fs.model import (
    KIND_DIR,
    KIND_FILE,
    KIND_NAMES,
    KIND_SYMLINK,
    KIND_TABLE,
    Entry,
    FileStat,
    Volume,
)
from medfabric.fs.namespace import VolumeWriter, list_children, load_mounts, walk
from medfabric.fs.paths import check_name
from medfabric.service.access import ADDCHILD, DELETECHILD, LOOKUPDIR, WRITE, inherited_aces, require
from medfabric.service.lineage import edge_rows, insert_edges
from medfabric.service.paths import Located, entry_stat, locate, require_found, walk_checked

if TYPE_CHECKING:
    from medfabric.fs.reader import FileReader
    from medfabric.service.fabric import Fabric

Source = bytes | bytearray | memoryview | BinaryIO | Iterable[bytes]


@dataclass(frozen=True)
class NewFile:
    """One file of a batch write; ``tag`` is the caller's, handed back to ``on_commit``."""

    path: str
    data: bytes
    mode: int = 0o644
    mtime_ns: int | None = None
    tag: object = None
    source: str | None = None  # where it came from (file://host/path, dicom://AE@host): its lineage
    digest: bytes | None = None  # BLAKE3 of ``data``, if the caller computed it from these bytes


# Runs inside a batch's transaction with the files it placed: (connection, [(file, its stat)]).
BatchHook = Callable[[Connection, list[tuple[NewFile, FileStat]]], None]


@dataclass
class BatchResult:
    written: list[FileStat] = field(default_factory=list)
    errors: dict[str, MedfabricError] = field(default_factory=dict)  # path -> why it was not written


def check_live(located: Located) -> None:
    if not located.is_live:
        raise ReadOnly(f"{located.path} is in a snapshot: snapshots are read-only")


def check_writable(volume: Volume) -> None:
    if volume.type == "mirror":
        raise ReadOnly(f"volume {volume.name} is a mirror: it is read-only until promoted")
    if volume.readonly:
        raise ReadOnly(f"volume {volume.name} is read-only")


class FileWrites:
    fabric: Fabric

    if TYPE_CHECKING:  # provided by FileService, the read side

        def open(self, path: str) -> FileReader: ...
        def stat(self, path: str) -> FileStat: ...
        def exists(self, path: str) -> bool: ...
        def listdir(self, path: str) -> list[FileStat]: ...
        def readlink(self, path: str) -> str: ...

    # -- helpers --

    def _builder(self, volume: Volume) -> ContentBuilder:
        fabric = self.fabric
        return ContentBuilder(
            fabric.store, volume.id, fabric.placement(volume), fabric.codec_policy(volume), fabric.pool
        )

    def _writer(self, conn: Connection, located: Located) -> VolumeWriter:
        check_live(located)
        current = load_mounts(conn)
        volume, _inside = current.resolve(located.components)
        if volume.id != located.volume.id:
            raise Conflict(f"{located.path} moved to another volume while it was being written")
        writer = VolumeWriter(conn, volume.id, self.fabric.clock.now_ns())
        check_writable(writer.volume)
        return writer

    def _directory(
        self,
        writer: VolumeWriter,
        located: Located,
        *,
        parents: bool,
        cache: dict[tuple[str, ...], Entry] | None = None,
    ) -> Entry:
        """The directory that will hold ``located`` (creating missing ones if ``parents``)."""
        principal = self.fabric.principal
        wanted = located.inside[:-1]
        if cache is not None and wanted in cache:
            return cache[wanted]
        directory = require_found(writer.get(writer.volume.root_ino), located.path)
        for depth, name in enumerate(wanted):
            require(principal, writer.volume, directory, LOOKUPDIR, located.path)
            child = writer.lookup(directory.ino, name)
            if child is None:
                if not parents:
                    raise NotFound(f"{located.path}: parent directory does not exist")
                require(principal, writer.volume, directory, ADDCHILD, located.path)
                child = writer.create(
                    parent_ino=directory.ino,
                    name=name,
                    kind=KIND_DIR,
                    mode=0o755,
                    owner=principal.name,
                    grp=directory.grp,
                    aces=inherited_aces(directory, is_directory=True),
                )
                if cache is not None:
                    cache[wanted[: depth + 1]] = child
            elif not child.is_dir:
                raise Conflict(f"{located.path}: {name} is not a directory")
            directory = child
        require(principal, writer.volume, directory, ADDCHILD, located.path)
        if cache is not None:
            cache[wanted] = directory
        return directory

    def _finish(self, writer: VolumeWriter) -> Volume:
        """Enforce the volume's quotas, then write the rows and counters."""
        volume = writer.volume
        projected = writer.projected_logical_bytes
        if volume.quota and writer.delta.logical_bytes > 0 and projected > volume.quota:
            raise QuotaExceeded(
                f"volume {volume.name}: writing {writer.delta.logical_bytes} bytes would pass "
                f"its quota ({projected} > {volume.quota} bytes)"
            )
        now = self.fabric.clock.now_ms()
        entity = f"volume {volume.name}"
        if volume.advisory_quota and projected > volume.advisory_quota:
            alarm_rows.raise_alarm(
                writer.conn,
                alarm_rows.ADVISORY_QUOTA_EXCEEDED,
                entity,
                f"{projected} bytes used, advisory quota {volume.advisory_quota}",
                now,
            )
        elif volume.advisory_quota and writer.delta.logical_bytes < 0:
            alarm_rows.clear_alarm(writer.conn, alarm_rows.ADVISORY_QUOTA_EXCEEDED, entity, now)
        return writer.finish()

    def _note_quota_refusal(self, volume: Volume, error: QuotaExceeded) -> None:
        with self.fabric.catalog.write() as conn:
            alarm_rows.raise_alarm(
                conn,
                alarm_rows.QUOTA_EXCEEDED,
                f"volume {volume.name}",
                error.message,
                self.fabric.clock.now_ms(),
            )

    def _precheck_target(self, located: Located, *, overwrite: bool, parents: bool, size: int | None) -> None:
        """Cheap checks before any byte is written (the transaction checks again)."""
        check_live(located)
        if located.is_volume_root:
            raise Conflict(f"{located.path} is a volume's mount point")
        check_writable(located.volume)
        with self.fabric.catalog.read() as conn:
            try:
                chain = walk_checked(conn, located, self.fabric.principal)
            except NotFound:
                if not parents:
                    parent = Located(
                        located.path.rsplit("/", 1)[0] or "/",
                        located.components[:-1],
                        located.mounts,
                        located.volume,
                        located.inside[:-1],
                    )
                    walk_checked(conn, parent, self.fabric.principal)
                return
            existing = chain[-1]
            if existing.is_dir:
                raise Conflict(f"{located.path} is a directory")
            if not overwrite:
                raise Conflict(f"{located.path} already exists (use -f to replace it)")
        volume = located.volume
        if size is not None and volume.quota and volume.logical_bytes + size > volume.quota:
            raise QuotaExceeded(
                f"volume {volume.name}: {size} more bytes would pass its quota "
                f"({volume.logical_bytes} of {volume.quota} bytes used)"
            )

    def _place_file(
        self,
        writer: VolumeWriter,
        located: Located,
        prepared: PreparedContent,
        *,
        overwrite: bool,
        parents: bool,
        mode: int,
        mtime_ns: int | None,
        cache: dict[tuple[str, ...], Entry] | None = None,
    ) -> Entry:
        directory = self._directory(writer, located, parents=parents, cache=cache)
        name = check_name(located.inside[-1], located.path)
        existing = writer.lookup(directory.ino, name)
        content_id = writer.new_id()
        writer.add_content(
            *content_rows.content_rows(content_id, writer.volume.id, prepared, writer.now_ns // 1_000_000)
        )
        if existing is not None:
            if not existing.is_file:
                raise Conflict(f"{located.path} is a {KIND_NAMES[existing.kind]}")
            if not overwrite:
                raise Conflict(f"{located.path} already exists (use -f to replace it)")
            require(self.fabric.principal, writer.volume, existing, WRITE, located.path)
            # new content: whatever instance the index knew there is gone (`dicom reindex` reads the new)
            self.fabric.dicom.files_removed(writer.conn, writer.volume.id, [existing.ino])
            return writer.update(
                existing,
                size=prepared.size,
                content_id=content_id,
                mtime_ns=mtime_ns if mtime_ns is not None else writer.now_ns,
            )
        return writer.create(
            parent_ino=directory.ino,
            name=name,
            kind=KIND_FILE,
            mode=mode,
            owner=self.fabric.principal.name,
            grp=directory.grp,
            aces=inherited_aces(directory, is_directory=False),
            size=prepared.size,
            content_id=content_id,
            mtime_ns=mtime_ns,
        )

    # -- writing files --

    def write(
        self,
        path: str,
        data: Source,
        *,
        overwrite: bool = False,
        parents: bool = False,
        mode: int = 0o644,
        mtime_ns: int | None = None,
        source: str | None = None,
    ) -> FileStat:
        """Create or (with ``overwrite``) replace a file; returns once it is durable. ``source`` (a URI
        such as file://host/path) is recorded as the file's lineage."""
        fabric = self.fabric
        with fabric.access("write", path) as note:
            with fabric.catalog.read() as conn:
                located = locate(conn, path)
            note.target(located.volume)
            check_live(located)
            size = len(data) if isinstance(data, (bytes, bytearray, memoryview)) else None
            self._precheck_target(located, overwrite=overwrite, parents=parents, size=size)
            builder = self._builder(located.volume)
            if isinstance(data, (bytes, bytearray, memoryview)) and len(data) <= builder.chunk_size:
                prepared = builder.add_bytes_many([bytes(data)])[0]
            else:
                prepared = builder.add_stream(data)
            built = builder.flush()
            try:
                with fabric.catalog.write() as conn:
                    writer = self._writer(conn, located)
                    entry = self._place_file(
                        writer,
                        located,
                        prepared,
                        overwrite=overwrite,
                        parents=parents,
                        mode=mode,
                        mtime_ns=mtime_ns,
                    )
                    content_rows.record_build(conn, built)
                    if source is not None:
                        insert_edges(
                            conn,
                            edge_rows(
                                [(located.path, entry.ino)],
                                [source],
                                "import",
                                {"interface": fabric.interface},
                                fabric.principal.name,
                                writer.now_ns // 1_000_000,
                            ),
                        )
                    self._finish(writer)
            except QuotaExceeded as error:
                self._note_quota_refusal(located.volume, error)
                raise
            return entry_stat(located, entry)

    def write_many(
        self,
        files: list[NewFile],
        *,
        overwrite: bool = False,
        parents: bool = True,
        on_commit: BatchHook | None = None,
    ) -> BatchResult:
        """Many (small) files in one durable step per volume: one flush, one transaction.

        A file that cannot be written (it exists, a bad name, no right) is reported in
        ``errors`` and the rest are written; a quota refusal fails the volume's whole batch.
        ``on_commit(conn, written)`` runs inside each volume's transaction after its files are
        placed, so rows that describe them (an index) commit atomically with them.
        """
        fabric = self.fabric
        result = BatchResult()
        with fabric.access("write", f"{len(files)} files") as note, fabric.catalog.read() as conn:
            mounts = load_mounts(conn)
            groups: dict[int, list[tuple[NewFile, Located]]] = {}
            for item in files:
                try:
                    located = locate(conn, item.path, mounts)
                    check_live(located)
                    if located.is_volume_root:
                        raise Conflict(f"{item.path} is a volume's mount point")
                    check_writable(located.volume)
                except MedfabricError as error:
                    result.errors[item.path] = error
                    continue
                groups.setdefault(located.volume.id, []).append((item, located))
            note.volume = ",".join(
                sorted({located.volume.name for batch in groups.values() for _item, located in batch})
            )
        for batch in groups.values():
            self._write_batch(batch, overwrite=overwrite, parents=parents, result=result, on_commit=on_commit)
        return result

    def _write_batch(
        self,
        batch: list[tuple[NewFile, Located]],
        *,
        overwrite: bool,
        parents: bool,
        result: BatchResult,
        on_commit: BatchHook | None,
    ) -> None:
        fabric = self.fabric
        volume = batch[0][1].volume
        builder = self._builder(volume)
        prepared = builder.add_bytes_many(
            [item.data for item, _located in batch], [item.digest for item, _located in batch]
        )
        built = builder.flush()
        try:
            with fabric.catalog.write() as conn:
                writer = self._writer(conn, batch[0][1])
                cache: dict[tuple[str, ...], Entry] = {}
                placed: list[tuple[NewFile, Located, Entry]] = []
                self._prefetch_targets(writer, batch, parents=parents, cache=cache)
                for (item, located), body in zip(batch, prepared, strict=True):
                    try:
                        entry = self._place_file(
                            writer,
                            located,
                            body,
                            overwrite=overwrite,
                            parents=parents,
                            mode=item.mode,
                            mtime_ns=item.mtime_ns,
                            cache=cache,
                        )
                    except (Conflict, NotFound, InvalidInput, PermissionDenied) as error:
                        result.errors[item.path] = error
                        continue
                    placed.append((item, located, entry))
                content_rows.record_build(conn, built)
                written = [(item, entry_stat(located, entry)) for item, located, entry in placed]
                insert_edges(
                    conn,
                    [
                        row
                        for item, located, entry in placed
                        if item.source
                        for row in edge_rows(
                            [(located.path, entry.ino)],
                            [item.source],
                            "import",
                            {"interface": fabric.interface},
                            fabric.principal.name,
                            writer.now_ns // 1_000_000,
                        )
                    ],
                )
                if on_commit is not None and written:
                    on_commit(conn, written)
                self._finish(writer)
        except QuotaExceeded as error:
            self._note_quota_refusal(volume, error)
            raise
        result.written.extend(stat for _item, stat in written)
        if volume.audited:
            fabric.record_accesses(
                "write", [(fabric.data_note(stat.path, volume), "allowed") for _i, stat in written]
            )

    def _prefetch_targets(
        self,
        writer: VolumeWriter,
        batch: list[tuple[NewFile, Located]],
        *,
        parents: bool,
        cache: dict[tuple[str, ...], Entry],
    ) -> None:
        """Resolve the batch's directories and look up all its names with one query per directory."""
        names: dict[int, list[str]] = {}
        for _item, located in batch:
            try:
                directory = self._directory(writer, located, parents=parents, cache=cache)
            except MedfabricError:
                continue  # reported when the file itself is placed
            names.setdefault(directory.ino, []).append(located.inside[-1])
        for directory_ino, wanted in names.items():
            writer.prefetch(directory_ino, wanted)

    def write_at(self, path: str, offset: int, data: bytes) -> FileStat:
        """Overwrite or extend part of a file (what FUSE writes need); the rest is kept."""
        if offset < 0:
            raise InvalidInput("offset must not be negative")
        return self._rewrite(path, "write", offset, data, None)

    def truncate(self, path: str, size: int) -> FileStat:
        if size < 0:
            raise InvalidInput("size must not be negative")
        return self._rewrite(path, "truncate", size, b"", size)

    def _rewrite(self, path: str, operation: str, offset: int, data: bytes, new_size: int | None) -> FileStat:
        fabric = self.fabric
        with fabric.access(operation, path) as note:
            with fabric.catalog.read() as conn:
                located = locate(conn, path)
                note.target(located.volume)
                check_live(located)
                check_writable(located.volume)
                entry = walk_checked(conn, located, fabric.principal)[-1]
                if not entry.is_file:
                    raise InvalidInput(f"{path} is not a regular file")
                require(fabric.principal, located.volume, entry, WRITE, path)
            builder = self._builder(located.volume)
            piece = builder.add_bytes_many([data])[0] if data else PreparedContent(0, [], None)
            built = builder.flush()
            try:
                with fabric.catalog.write() as conn:
                    writer = self._writer(conn, located)
                    current = walk_checked(conn, located, fabric.principal)[-1]
                    old = (
                        content_rows.load_extents(conn, current.content_id)
                        if current.content_id is not None
                        else []
                    )
                    if new_size is None:
                        moved = [
                            Extent(e.file_offset + offset, e.length, e.blob_id, e.blob_offset)
                            for e in piece.extents
                        ]
                        extents = splice(old, offset, offset + len(data), moved)
                        size = max(current.size, offset + len(data))
                    else:
                        extents = splice(old, new_size, max(current.size, new_size), [])
                        size = new_size
                    content_id = writer.new_id()
                    writer.add_content(
                        *content_rows.content_rows(
                            content_id,
                            writer.volume.id,
                            PreparedContent(size, extents, None),
                            writer.now_ns // 1_000_000,
                        )
                    )
                    updated = writer.update(current, size=size, content_id=content_id, mtime_ns=writer.now_ns)
                    content_rows.record_build(conn, built)
                    self._finish(writer)
            except QuotaExceeded as error:
                self._note_quota_refusal(located.volume, error)
                raise
            return entry_stat(located, updated)

    # -- directories, links, metadata --

    def mkdir(self, path: str, *, parents: bool = False, mode: int = 0o755) -> FileStat:
        fabric = self.fabric
        with fabric.access("mkdir", path) as note, fabric.catalog.write() as conn:
            located = locate(conn, path)
            note.target(located.volume)
            check_live(located)
            if located.is_volume_root:
                if parents:
                    return entry_stat(located, walk_checked(conn, located, fabric.principal)[-1])
                raise Conflict(f"{path} already exists (a volume's mount point)")
            writer = self._writer(conn, located)
            directory = self._directory(writer, located, parents=parents)
            name = check_name(located.inside[-1], path)
            existing = writer.lookup(directory.ino, name)
            if existing is not None:
                if parents and existing.is_dir:
                    return entry_stat(located, existing)
                raise Conflict(f"{path} already exists")
            entry = writer.create(
                parent_ino=directory.ino,
                name=name,
                kind=KIND_DIR,
                mode=mode,
                owner=fabric.principal.name,
                grp=directory.grp,
                aces=inherited_aces(directory, is_directory=True),
            )
            self._finish(writer)
            return entry_stat(located, entry)

    def symlink(self, target: str, path: str) -> FileStat:
        fabric = self.fabric
        if not target or "\x00" in target:
            raise InvalidInput("a symbolic link needs a target without NUL bytes")
        with fabric.access("symlink", path) as note, fabric.catalog.write() as conn:
            located = locate(conn, path)
            note.target(located.volume)
            check_live(located)
            if located.is_volume_root:
                raise Conflict(f"{path} is a volume's mount point")
            writer = self._writer(conn, located)
            directory = self._directory(writer, located, parents=False)
            name = check_name(located.inside[-1], path)
            if writer.lookup(directory.ino, name) is not None:
                raise Conflict(f"{path} already exists")
            entry = writer.create(
                parent_ino=directory.ino,
                name=name,
                kind=KIND_SYMLINK,
                mode=0o777,
                owner=fabric.principal.name,
                grp=directory.grp,
                aces=inherited_aces(directory, is_directory=False),
                size=len(target.encode()),
                target=target,
            )
            self._finish(writer)
            return entry_stat(located, entry)

    def remove(self, path: str, *, recursive: bool = False) -> int:
        """Remove a file, an empty directory, or (``recursive``) a tree; returns entries removed."""
        fabric = self.fabric
        with fabric.access("delete", path) as note, fabric.catalog.write() as conn:
            located = locate(conn, path)
            note.target(located.volume)
            check_live(located)
            if located.is_volume_root:
                raise Conflict(
                    f"{path} is the mount point of volume {located.volume.name}: "
                    "use `volume unmount` or `volume remove`"
                )
            nested = located.mounts.mounted_below(located.components)
            if nested:
                raise NotEmpty(f"{path}: volume {nested[0].name} is mounted inside it")
            writer = self._writer(conn, located)
            chain = walk_checked(conn, located, fabric.principal)
            target = chain[-1]
            require(fabric.principal, writer.volume, chain[-2], DELETECHILD, path)
            doomed = [target]
            if target.is_dir:
                doomed = self._subtree(conn, writer, target, path, recursive)
            tables = [entry.name for entry in doomed if entry.kind == KIND_TABLE]
            if tables:
                raise Conflict(f"{path} holds the JSON table {tables[0]}: delete it with `table delete`")
            for entry in reversed(doomed):
                writer.retire(entry, touch_parent=entry is target)
            # the imaging index and metadata table forget the instances, in the same transaction
            fabric.dicom.files_removed(
                conn, writer.volume.id, [entry.ino for entry in doomed if entry.kind == KIND_FILE]
            )
            self._finish(writer)
            return len(doomed)

    def _subtree(
        self, conn: Connection, writer: VolumeWriter, top: Entry, path: str, recursive: bool
    ) -> list[Entry]:
        order: list[Entry] = []
        pending = [top]
        while pending:
            directory = pending.pop()
            order.append(directory)
            if not directory.is_dir:
                continue
            children = list_children(conn, writer.volume.id, directory.ino)
            if children and not recursive:
                raise NotEmpty(f"{path} is not empty (use -r)")
            if children:
                require(self.fabric.principal, writer.volume, directory, DELETECHILD, path)
            pending.extend(children)
        return order

    def rename(self, source: str, destination: str) -> FileStat:
        """POSIX rename within a volume (O(1), atomic); across volumes a copy, then a delete."""
        fabric = self.fabric
        with fabric.access("rename", source) as note:
            with fabric.catalog.read() as conn:
                src = locate(conn, source)
                dst = locate(conn, destination)
            note.target(src.volume)
            note.detail = f"to {dst.path}"
            check_live(src)
            check_live(dst)
            if src.is_volume_root or dst.is_volume_root:
                raise Conflict("a volume's mount point cannot be renamed: use `volume mount`/`unmount`")
            if dst.components[: len(src.components)] == src.components:
                raise InvalidInput(f"cannot move {source} into itself")
            if src.volume.id != dst.volume.id:
                return self._move_across(src, dst)
            with fabric.catalog.write() as conn:
                writer = self._writer(conn, src)
                chain = walk_checked(conn, src, fabric.principal)
                entry = chain[-1]
                require(fabric.principal, writer.volume, chain[-2], DELETECHILD, source)
                directory = self._directory(writer, dst, parents=False)
                name = check_name(dst.inside[-1], destination)
                existing = writer.lookup(directory.ino, name)
                if existing is not None and existing.ino != entry.ino:
                    if existing.kind == KIND_TABLE:
                        raise Conflict(f"{destination} is a JSON table: delete it with `table delete` first")
                    if existing.is_dir != entry.is_dir:
                        raise Conflict(
                            f"cannot replace {'a directory' if existing.is_dir else 'a file'} "
                            f"{destination} with {'a directory' if entry.is_dir else 'a file'}"
                        )
                    if existing.is_dir and list_children(conn, writer.volume.id, existing.ino):
                        raise NotEmpty(f"{destination} is a directory that is not empty")
                    writer.retire(existing)
                    if existing.kind == KIND_FILE:
                        fabric.dicom.files_removed(conn, writer.volume.id, [existing.ino])
                moved = writer.update(entry, parent_ino=directory.ino, name=name)
                fabric.dicom.files_moved(
                    conn,
                    writer.volume.id,
                    src.path,
                    dst.path,
                    file_ino=entry.ino if entry.kind == KIND_FILE else None,
                )
                self._finish(writer)
                return entry_stat(dst, moved)

    def _move_across(self, src: Located, dst: Located) -> FileStat:
        moving = self.stat(src.path)
        if moving.type == "table":
            raise Conflict(f"{src.path} is a JSON table: it cannot move to another volume")
        if self.exists(dst.path):
            raise Conflict(f"{dst.path} already exists in another volume")
        self._copy_tree(src.path, dst.path)
        fabric = self.fabric
        with fabric.catalog.write() as conn:  # the instances moved go with their files
            mounts = load_mounts(conn)

            def inode_of(path: str) -> int | None:
                try:
                    located = locate(conn, path, mounts)
                    return walk(conn, located.volume, located.inside)[-1].ino
                except NotFound:
                    return None

            fabric.dicom.files_moved(
                conn,
                src.volume.id,
                src.path,
                dst.path,
                dst.volume,
                inode_of,
                file_ino=moving.ino if moving.type == "file" else None,
            )
        self.remove(src.path, recursive=True)
        return self.stat(dst.path)

    def _copy_tree(self, source: str, destination: str) -> None:
        info = self.stat(source)
        if info.type == "directory":
            self.mkdir(destination, mode=info.mode & 0o7777)
            for child in self.listdir(source):
                self._copy_tree(child.path, destination.rstrip("/") + "/" + child.name)
        elif info.type == "symlink":
            self.symlink(self.readlink(source), destination)
        else:
            with self.open(source) as reader:
                self.write(destination, reader, mode=info.mode & 0o7777, mtime_ns=info.mtime_ns)

    def chmod(self, path: str, mode: int) -> FileStat:
        return self._set_attributes(path, "setattr", mode=mode & 0o7777)

    def chown(self, path: str, owner: str | None = None, group: str | None = None) -> FileStat:
        changes: dict[str, object] = {}
        if owner is not None:
            changes["owner"] = owner
        if group is not None:
            changes["grp"] = group
        return self._set_attributes(path, "setattr", **changes)

    def utime(self, path: str, mtime_ns: int | None = None, atime_ns: int | None = None) -> FileStat:
        changes: dict[str, object] = {}
        if mtime_ns is not None:
            changes["mtime_ns"] = mtime_ns
        if atime_ns is not None:
            changes["atime_ns"] = atime_ns
        return self._set_attributes(path, "setattr", **changes)

    def _set_attributes(self, path: str, operation: str, **changes: object) -> FileStat:
        fabric = self.fabric
        principal = fabric.principal
        with fabric.access(operation, path) as note, fabric.catalog.write() as conn:
            located = locate(conn, path)
            note.target(located.volume)
            check_live(located)
            note.detail = ",".join(sorted(changes))
            writer = self._writer(conn, located)
            entry = walk_checked(conn, located, principal)[-1]
            if "owner" in changes and not principal.admin and changes["owner"] != entry.owner:
                raise PermissionDenied(f"only an administrator may give {path} to another owner")
            if (
                "grp" in changes
                and not principal.admin
                and (principal.name != entry.owner or changes["grp"] not in principal.groups)
            ):
                raise PermissionDenied(f"{principal.name} may not change the group of {path}")
            if "mode" in changes and not principal.admin and principal.name != entry.owner:
                raise PermissionDenied(f"only the owner of {path} may change its mode")
            if (
                ("mtime_ns" in changes or "atime_ns" in changes)
                and not principal.admin
                and principal.name != entry.owner
            ):
                require(principal, writer.volume, entry, WRITE, path)
            updated = writer.update(entry, **changes) if changes else entry
            self._finish(writer)
            return entry_stat(located, updated)


def splice(old: list[Extent], start: int, end: int, middle: list[Extent]) -> list[Extent]:
    """Extents of ``old`` outside [start, end), with ``middle`` in between, in file order."""
    result: list[Extent] = []
    for extent in old:
        if extent.end <= start:
            result.append(extent)
        elif extent.file_offset < start:
            result.append(
                Extent(extent.file_offset, start - extent.file_offset, extent.blob_id, extent.blob_offset)
            )
    result.extend(middle)
    for extent in old:
        if extent.file_offset >= end:
            result.append(extent)
        elif extent.end > end:
            cut = end - extent.file_offset
            result.append(Extent(end, extent.end - end, extent.blob_id, extent.blob_offset + cut))
    return result
