"""A data directory as a backend: one file per object, fsync'd file and directory on commit.

Must never acknowledge a write before ``fsync`` of the file and, for a new file, of the
directory entry that names it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from medfabric.blobstore.backend import AppendHandle, Backend, BackendError, Capacity, ObjectInfo

WRITEBACK_STEP = 8 * 1024 * 1024
_SYNC_FILE_RANGE_WRITE = 2


def _load_sync_file_range() -> Callable[[int, int, int], None] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]

    def call(fd: int, offset: int, length: int) -> None:
        function(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # advisory: errors are ignored

    return call


_sync_file_range = _load_sync_file_range() if sys.platform.startswith("linux") else None


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range back (Linux; elsewhere, nothing)."""
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length)


def fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalAppendHandle(AppendHandle):
    def __init__(self, path: Path, truncate_to: int | None) -> None:
        self._path = path
        created = not path.exists()
        if created:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if truncate_to is not None:
            os.ftruncate(self._fd, truncate_to)
        self._size = os.fstat(self._fd).st_size
        self._started_writeback = self._size
        self._new_entry = created

    def write(self, *parts: bytes | memoryview) -> int:
        offset = self._size
        views = [memoryview(part) for part in parts if len(part)]
        while views:
            written = os.pwritev(self._fd, views, self._size)
            self._size += written
            while views and written >= len(views[0]):
                written -= len(views[0])
                views.pop(0)
            if views and written:
                views[0] = views[0][written:]
        if self._size - self._started_writeback >= WRITEBACK_STEP:
            # Start writing back now rather than letting dirty pages pile up until fsync: on a
            # loaded machine that keeps large writes near the disk's speed.
            start_writeback(self._fd, self._started_writeback, self._size - self._started_writeback)
            self._started_writeback = self._size
        return offset

    def sync(self) -> None:
        os.fsync(self._fd)
        if self._new_entry:
            fsync_directory(self._path.parent)
            self._new_entry = False

    def release_cache(self) -> None:
        # A sealed pack is durable and no longer appended to: its pages leave the page cache now,
        # so a bulk import does not grow the cache by its whole size (evicting the machine's working
        # set, as PostgreSQL's bulk-write ring avoids) and its next writes reuse warm pages.
        if hasattr(os, "posix_fadvise"):
            with contextlib.suppress(OSError):
                os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_DONTNEED)

    @property
    def size(self) -> int:
        return self._size

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


class LocalBackend(Backend):
    kind = "local"
    supports_append = True

    def __init__(self, location_id: int, root: Path) -> None:
        self.location_id = location_id
        self.root = root
        self.uri = str(root)
        self._read_fds: dict[str, int] = {}

    def _path(self, name: str) -> Path:
        return self.root / name

    def put(self, name: str, data: bytes) -> None:
        self._forget(name)  # a cached read descriptor would keep reading the file this replaces
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        fsync_directory(path.parent)

    def open_append(self, name: str, *, truncate_to: int | None = None) -> AppendHandle:
        self._forget(name)
        return LocalAppendHandle(self._path(name), truncate_to)

    def read(self, name: str, offset: int, length: int) -> bytes:
        try:
            fd = self._read_fds.get(name)
            if fd is None:
                fd = os.open(self._path(name), os.O_RDONLY)
                if len(self._read_fds) > 256:
                    self._forget_all()
                self._read_fds[name] = fd
            data = os.pread(fd, length, offset)
        except OSError as error:
            self._forget(name)
            raise BackendError(f"{self.uri}: cannot read {name}: {error.strerror}") from error
        if len(data) != length:
            raise BackendError(f"{self.uri}: {name} is shorter than {offset + length} bytes")
        return data

    def delete(self, name: str) -> None:
        self._forget(name)
        with contextlib.suppress(FileNotFoundError):
            self._path(name).unlink()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self.root
        for dirpath, _dirs, files in os.walk(base):
            for filename in files:
                if filename.endswith(".tmp"):
                    continue
                full = Path(dirpath, filename)
                name = full.relative_to(base).as_posix()
                if name.startswith(prefix):
                    with contextlib.suppress(FileNotFoundError):
                        yield ObjectInfo(name, full.stat().st_size)

    def stat(self, name: str) -> ObjectInfo | None:
        try:
            return ObjectInfo(name, self._path(name).stat().st_size)
        except FileNotFoundError:
            return None

    def capacity(self) -> Capacity | None:
        try:
            usage = shutil.disk_usage(self.root)
        except OSError:
            return None
        return Capacity(usage.total, usage.used, usage.free)

    def _forget(self, name: str) -> None:
        fd = self._read_fds.pop(name, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _forget_all(self) -> None:
        for name in list(self._read_fds):
            self._forget(name)

    def close(self) -> None:
        self._forget_all()
