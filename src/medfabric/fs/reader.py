"""Reading a file's bytes: a seekable, buffered-friendly raw stream over its extents.

Every byte returned comes from a blob that verified (see ``BlobStore.read_blob``). Sequential
readers get the next blob fetched in the background while they consume the current one.
"""

from __future__ import annotations

import bisect
import io
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from medfabric.blobstore.codec import Buffer
from medfabric.fs.content import Extent

BlobFetcher = Callable[[bytes], Buffer]


class FileReader(io.RawIOBase):
    """A read-only view of one version of one file (snapshot-stable: contents are immutable)."""

    def __init__(
        self,
        parts: list[Extent],
        size: int,
        fetch: BlobFetcher,
        pool: ThreadPoolExecutor | None = None,
        name: str = "",
    ) -> None:
        super().__init__()
        self._parts = parts
        self._starts = [extent.file_offset for extent in parts]
        self._size = size
        self._fetch = fetch
        self._pool = pool
        self._position = 0
        self._cache: tuple[bytes, Buffer] | None = None  # (blob id, plaintext)
        self._prefetch: tuple[bytes, Future[Buffer]] | None = None
        self.name = name

    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise ValueError("negative seek position")
        self._position = position
        return position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        want = min(len(view), max(0, self._size - self._position))
        done = 0
        while done < want:
            piece = self._piece_at(self._position, want - done)
            view[done : done + len(piece)] = piece
            done += len(piece)
            self._position += len(piece)
        return done

    def readall(self) -> bytes:
        return self.read(-1)

    def read(self, size: int | None = -1) -> bytes:
        remaining = max(0, self._size - self._position)
        want = remaining if size is None or size < 0 else min(size, remaining)
        pieces: list[Buffer] = []
        done = 0
        while done < want:
            piece = self._piece_at(self._position, want - done)
            pieces.append(piece)
            done += len(piece)
            self._position += len(piece)
        if len(pieces) == 1:
            return bytes(pieces[0])
        return b"".join(pieces)

    def pread(self, offset: int, length: int) -> bytes:
        """Read without moving the position (FUSE and ranged GETs)."""
        saved = self._position
        try:
            self._position = offset
            return self.read(length)
        finally:
            self._position = saved

    def _piece_at(self, position: int, want: int) -> Buffer:
        """Up to ``want`` bytes at ``position``, as a view into a cached blob where possible."""
        index = bisect.bisect_right(self._starts, position) - 1
        extent = self._parts[index] if index >= 0 else None
        if extent is None or position >= extent.end:
            # Between extents (a sparse region): zeros up to the next extent or the end.
            following = self._starts[index + 1] if index + 1 < len(self._starts) else self._size
            return bytes(min(want, following - position))
        inside = position - extent.file_offset
        count = min(want, extent.length - inside)
        if extent.blob_id is None:
            return bytes(count)
        data = self._blob(extent.blob_id)
        if index + 1 < len(self._parts):
            self._start_prefetch(self._parts[index + 1].blob_id)
        start = extent.blob_offset + inside
        return memoryview(data)[start : start + count]

    def _blob(self, blob_id: bytes) -> Buffer:
        if self._cache is not None and self._cache[0] == blob_id:
            return self._cache[1]
        if self._prefetch is not None and self._prefetch[0] == blob_id:
            data = self._prefetch[1].result()
            self._prefetch = None
        else:
            data = self._fetch(blob_id)
        self._cache = (blob_id, data)
        return data

    def _start_prefetch(self, blob_id: bytes | None) -> None:
        if self._pool is None or blob_id is None or self._prefetch is not None:
            return
        if self._cache is not None and self._cache[0] == blob_id:
            return
        self._prefetch = (blob_id, self._pool.submit(self._fetch, blob_id))

    def close(self) -> None:
        if self._prefetch is not None:
            self._prefetch[1].cancel()
            self._prefetch = None
        self._cache = None
        super().close()
