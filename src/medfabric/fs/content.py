"""File bodies: cutting bytes into chunks, writing their blobs, and the content/extent rows.

A content is immutable: an ordered list of extents, each a range of one blob (or a hole). Bytes
go to the blob store first (``ContentBuilder``, outside any transaction); the rows are written
later, inside the transaction that also writes the namespace entry (``insert_content``).
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar

import blake3
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.blobstore import codec as codecs
from medfabric.blobstore import index
from medfabric.blobstore.index import BlobLocation, FlushResult
from medfabric.blobstore.store import BlobStore, NewRecord, Placement
from medfabric.catalog.engine import chunked
from medfabric.catalog.schema import blobs, contents, extents

CHUNK_SIZE = 4 * 1024 * 1024
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Extent:
    file_offset: int
    length: int
    blob_id: bytes | None  # None: a hole
    blob_offset: int = 0

    @property
    def end(self) -> int:
        return self.file_offset + self.length


@dataclass
class PreparedContent:
    """A body whose blobs are queued (durable after the builder's flush) but not yet recorded."""

    size: int
    extents: list[Extent]
    digest: bytes | None


@dataclass
class _Encoded:
    blob_id: bytes
    length: int
    codec: int = 0
    payload: bytes = b""
    zero: bool = False


@dataclass
class BuildResult:
    flush: FlushResult
    reused: list[bytes] = field(default_factory=list)  # blob ids referenced but already stored


class ContentBuilder:
    """Turns bytes into queued blobs for one volume, deduplicating against what it already holds."""

    def __init__(
        self,
        store: BlobStore,
        volume_id: int,
        placement: Placement,
        policy: codecs.CodecPolicy,
        pool: ThreadPoolExecutor,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.store = store
        self.volume_id = volume_id
        self.policy = policy
        self.pool = pool
        self.chunk_size = chunk_size
        self.writer = store.writer(volume_id, placement)
        self.owner = self.writer.new_owner()  # the shared writer hands back only our blobs
        self._known: set[bytes] = set()  # queued or found stored, in this build
        self._reused: list[bytes] = []

    def _encode(self, chunk: bytes, *, speculative: bool) -> _Encoded:
        if _all_zero(chunk):
            return _Encoded(b"", len(chunk), zero=True)
        blob_id = codecs.compute_blob_id(self.policy, chunk)
        if not speculative:
            return _Encoded(blob_id, len(chunk), payload=chunk)
        codec, payload = codecs.encode(self.policy, blob_id, chunk)
        return _Encoded(blob_id, len(chunk), codec, payload)

    def _stored(self, blob_ids: list[bytes]) -> set[bytes]:
        wanted = [blob_id for blob_id in blob_ids if blob_id not in self._known]
        if not wanted:
            return set()
        with self.store.catalog.read() as conn:
            return set(index.lookup_blobs(conn, self.volume_id, wanted))

    def _queue(self, encoded: _Encoded, already_stored: bool) -> None:
        if encoded.zero or encoded.blob_id in self._known:
            return
        self._known.add(encoded.blob_id)
        if already_stored:
            self._reused.append(encoded.blob_id)
        else:
            self.writer.append(
                encoded.blob_id, encoded.codec, encoded.length, encoded.payload, owner=self.owner
            )

    def _map(self, function: Callable[[T], R], items: list[T]) -> list[R]:
        """``function`` over ``items`` on the pool, in a few slices (a task per item costs more than
        hashing a small file)."""
        if len(items) < 16:
            return [function(item) for item in items]
        slices = max(2, 2 * getattr(self.pool, "_max_workers", 2))
        step = -(-len(items) // slices)
        parts = [items[start : start + step] for start in range(0, len(items), step)]
        return [
            result
            for part in self.pool.map(lambda part: [function(item) for item in part], parts)
            for result in part
        ]

    def add_bytes_many(
        self, bodies: list[bytes], digests: Sequence[bytes | None] | None = None
    ) -> list[PreparedContent]:
        """Many small bodies at once: hashed in parallel, one catalog lookup, encoded (and their
        records' CRC-32 computed) in parallel. ``digests``: the BLAKE3 of a body, where the caller
        computed it from these very bytes already (it is the blob id of a small plain body)."""
        pieces: list[tuple[int, int, bytes]] = []  # (body index, offset, chunk)
        known: dict[int, bytes] = {}  # piece number → its blob id, from the caller's digest
        for number, body in enumerate(bodies):
            if len(body) <= self.chunk_size:
                digest = digests[number] if digests is not None and not self.policy.encrypted else None
                if digest is not None and len(body) > 0:
                    known[len(pieces)] = digest
                pieces.append((number, 0, body))  # the common case: no copy
                continue
            view = memoryview(body)
            for offset in range(0, len(body), self.chunk_size):
                pieces.append((number, offset, bytes(view[offset : offset + self.chunk_size])))

        def identify(numbered: tuple[int, tuple[int, int, bytes]]) -> _Encoded:
            position, (_number, _offset, chunk) = numbered
            blob_id = known.get(position)
            if blob_id is None or _all_zero(chunk):
                return self._encode(chunk, speculative=False)
            return _Encoded(blob_id, len(chunk), payload=chunk)

        hashed = self._map(identify, list(enumerate(pieces)))
        stored = self._stored([item.blob_id for item in hashed if not item.zero])
        to_encode = [
            item
            for item in hashed
            if not item.zero and item.blob_id not in stored and item.blob_id not in self._known
        ]

        def encode(item: _Encoded) -> tuple[int, bytes, int]:
            codec, payload = codecs.encode(self.policy, item.blob_id, item.payload)
            return codec, payload, 0 if codec & codecs.ID_CHECKED else zlib.crc32(payload)

        encoded = dict(zip([item.blob_id for item in to_encode], self._map(encode, to_encode), strict=True))
        results = [PreparedContent(len(body), [], None) for body in bodies]
        new_records: list[NewRecord] = []
        for (number, offset, _chunk), item in zip(pieces, hashed, strict=True):
            if not item.zero and item.blob_id not in self._known:
                self._known.add(item.blob_id)
                if item.blob_id in stored:
                    self._reused.append(item.blob_id)
                else:
                    codec, payload, crc = encoded[item.blob_id]
                    new_records.append(NewRecord(item.blob_id, codec, item.length, payload, crc))
            results[number].extents.append(Extent(offset, item.length, None if item.zero else item.blob_id))
        self.writer.append_many(new_records, owner=self.owner)
        for number, (result, body) in enumerate(zip(results, bodies, strict=True)):
            if len(body) > self.chunk_size:
                continue  # a whole-file digest would cost a pass over a large body: left unknown
            only = result.extents[0] if result.extents else None
            given = digests[number] if digests is not None else None
            if given is not None:
                result.digest = given
            elif only is not None and only.blob_id is not None and not self.policy.encrypted:
                result.digest = only.blob_id  # one plain blob: its id is the BLAKE3 of the body
            else:
                result.digest = blake3.blake3(body).digest()
        return results

    def add_stream(
        self, source: bytes | bytearray | memoryview | BinaryIO | Iterable[bytes]
    ) -> PreparedContent:
        """A body of any size, read in chunks; hashing and encoding overlap with reading."""
        digest = blake3.blake3()
        window: deque[tuple[int, Future[_Encoded]]] = deque()
        result = PreparedContent(0, [], None)
        depth = max(2, getattr(self.pool, "_max_workers", 2) * 2)

        def drain(limit: int) -> None:
            while len(window) > limit:
                offset, future = window.popleft()
                item = future.result()
                if not item.zero and item.blob_id not in self._known:
                    self._queue(item, bool(self._stored([item.blob_id])))
                result.extents.append(Extent(offset, item.length, None if item.zero else item.blob_id))

        # The whole-file digest runs in order on a thread of its own, overlapping the reading.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="medfabric-digest") as hashing:
            for chunk in _chunks(source, self.chunk_size):
                hashing.submit(digest.update, chunk)
                window.append((result.size, self.pool.submit(self._encode, chunk, speculative=True)))
                result.size += len(chunk)
                drain(depth)
            drain(0)
        result.digest = digest.digest()
        return result

    def flush(self) -> BuildResult:
        """Make every queued blob durable; the result is recorded by ``record_build``."""
        result = BuildResult(self.writer.flush(self.owner), self._reused)
        self._reused = []
        self._known = set()
        return result


def _all_zero(chunk: bytes) -> bool:
    """A hole; cheap for data (a DICOM file's zero preamble ends at byte 128)."""
    if chunk[:1] != b"\0" or chunk[-1:] != b"\0":
        return False
    head = chunk[:4096]
    return head == bytes(len(head)) and chunk == bytes(len(chunk))


def _chunks(
    source: bytes | bytearray | memoryview | BinaryIO | Iterable[bytes], size: int
) -> Iterator[bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        for offset in range(0, len(data), size):
            yield data[offset : offset + size]
        return
    read = getattr(source, "read", None)
    if read is None:
        buffer = bytearray()
        for piece in source:
            buffer += piece
            while len(buffer) >= size:
                yield bytes(buffer[:size])
                del buffer[:size]
        if buffer:
            yield bytes(buffer)
        return
    while True:
        chunk = read(size)
        while chunk and len(chunk) < size:  # short reads from pipes and sockets
            more = read(size - len(chunk))
            if not more:
                break
            chunk += more
        if not chunk:
            return
        yield bytes(chunk)


def record_build(conn: Connection, result: BuildResult) -> None:
    index.commit_flush(conn, result.flush)
    index.reuse_blobs(conn, result.flush.volume_id, result.reused)


def content_rows(
    content_id: int, volume_id: int, prepared: PreparedContent, now_ms: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    content = {
        "id": content_id,
        "volume_id": volume_id,
        "size": prepared.size,
        "digest": prepared.digest,
        "created_at": now_ms,
    }
    rows = [
        {
            "content_id": content_id,
            "seq": seq,
            "file_offset": extent.file_offset,
            "length": extent.length,
            "blob_id": extent.blob_id,
            "blob_offset": extent.blob_offset,
        }
        for seq, extent in enumerate(prepared.extents)
    ]
    return content, rows


def load_extents(conn: Connection, content_id: int) -> list[Extent]:
    rows = conn.execute(
        sa.select(extents.c.file_offset, extents.c.length, extents.c.blob_id, extents.c.blob_offset)
        .where(extents.c.content_id == content_id)
        .order_by(extents.c.seq)
    )
    return [
        Extent(offset, length, bytes(blob_id) if blob_id is not None else None, blob_offset)
        for offset, length, blob_id, blob_offset in rows
    ]


def load_located_extents(
    conn: Connection, volume_id: int, content_id: int
) -> tuple[list[Extent], dict[bytes, BlobLocation]]:
    """``load_extents`` and ``locate_blobs`` in one statement (what opening a file for reading needs)."""
    joined = extents.outerjoin(
        blobs, sa.and_(blobs.c.volume_id == volume_id, blobs.c.blob_id == extents.c.blob_id)
    )
    rows = conn.execute(
        sa.select(
            extents.c.file_offset,
            extents.c.length,
            extents.c.blob_id,
            extents.c.blob_offset,
            blobs.c.pack_id,
            blobs.c.offset,
            blobs.c.stored_length,
            blobs.c.length.label("blob_length"),
            blobs.c.codec,
        )
        .select_from(joined)
        .where(extents.c.content_id == content_id)
        .order_by(extents.c.seq)
    )
    parts: list[Extent] = []
    found: dict[bytes, BlobLocation] = {}
    for offset, length, blob_id, blob_offset, pack_id, pack_offset, stored, blob_length, codec in rows:
        key = bytes(blob_id) if blob_id is not None else None
        parts.append(Extent(offset, length, key, blob_offset))
        if key is not None and pack_id is not None:
            found[key] = BlobLocation(pack_id, pack_offset, stored, blob_length, codec)
    return parts, found


def load_content_digest(conn: Connection, content_id: int) -> bytes | None:
    value = conn.execute(sa.select(contents.c.digest).where(contents.c.id == content_id)).scalar()
    return bytes(value) if value is not None else None


def locate_blobs(conn: Connection, volume_id: int, parts: list[Extent]) -> dict[bytes, BlobLocation]:
    ids = [extent.blob_id for extent in parts if extent.blob_id is not None]
    found: dict[bytes, BlobLocation] = {}
    for part in chunked(ids):
        found.update(index.lookup_blobs(conn, volume_id, part))
    return found
