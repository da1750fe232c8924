"""Writers that append blobs to packs on N replicas, and reads verified against every checksum.

A ``PackWriter`` makes blobs durable at ``flush()`` on at least the volume's minimum replication
and hands back a ``FlushResult`` that the caller records in its own catalog transaction: a
write is acknowledged only after both. Reads try each replica in turn and never return bytes
that fail the record CRCs, the codec's authentication or the blob id.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import socket
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import sqlalchemy as sa

from medfabric.blobstore import codec as codecs
from medfabric.blobstore.backend import AppendHandle, Backend, BackendError
from medfabric.blobstore.index import BlobLocation, FlushResult, PackRow, format_replicas, pack_row
from medfabric.blobstore.pack import (
    PACK_HEADER_SIZE,
    RECORD_HEADER_SIZE,
    check_record,
    encode_pack_header,
    encode_record_header,
    new_pack_id,
    pack_object_name,
)
from medfabric.catalog.engine import Catalog
from medfabric.catalog.schema import packs
from medfabric.clock import Clock, SystemClock
from medfabric.errors import IntegrityError, Unavailable

PACK_TARGET_SIZE = 64 * 1024 * 1024


@dataclass(frozen=True)
class Placement:
    """How many copies a volume's packs get, and whether small blobs share packs."""

    replication: int
    min_replication: int
    packing: bool = True


BadReplicaHandler = Callable[[str, int, str], None]


class BlobStore:
    """All the backends of a fabric, one set of writers per process, and verified reads."""

    def __init__(
        self,
        catalog: Catalog,
        backends: Sequence[Backend],
        *,
        clock: Clock | None = None,
        pack_target_size: int = PACK_TARGET_SIZE,
    ) -> None:
        if not backends:
            raise Unavailable("the fabric has no storage locations")
        self.catalog = catalog
        self.backends = {backend.location_id: backend for backend in backends}
        self.clock = clock or SystemClock()
        self.pack_target_size = pack_target_size
        self.writer_id = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        self.on_bad_replica: BadReplicaHandler | None = None
        self._replicas: dict[str, tuple[int, ...]] = {}
        self._writers: dict[int, PackWriter] = {}
        self._lock = threading.Lock()
        self.io_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="medfabric-io")

    @property
    def appendable(self) -> bool:
        return all(backend.supports_append for backend in self.backends.values())

    def max_replication(self) -> int:
        """Copies the store itself can keep: data directories, or 1 where the object store replicates."""
        return len(self.backends) if self.appendable else 1

    def writer(self, volume_id: int, placement: Placement) -> PackWriter:
        with self._lock:
            writer = self._writers.get(volume_id)
            if writer is None or writer.placement != placement:
                if writer is not None:
                    writer.release()
                writer = self._writers[volume_id] = PackWriter(self, volume_id, placement)
            return writer

    def choose_locations(self, count: int) -> tuple[int, ...]:
        candidates = list(self.backends.values())
        if self.appendable:

            def free(backend: Backend) -> int:
                capacity = backend.capacity()
                return capacity.free_bytes if capacity else 0

            random.shuffle(candidates)
            candidates.sort(key=free, reverse=True)
        return tuple(backend.location_id for backend in candidates[: max(1, min(count, len(candidates)))])

    def replicas_of(self, pack_id: str, *, refresh: bool = False) -> tuple[int, ...]:
        replicas = None if refresh else self._replicas.get(pack_id)
        if replicas is None:
            with self.catalog.read() as conn:
                text = conn.execute(sa.select(packs.c.replicas).where(packs.c.id == pack_id)).scalar()
            if text is None:
                raise IntegrityError(f"pack {pack_id} is not in the catalog")
            replicas = tuple(int(part) for part in str(text).split(",") if part)
            self._replicas[pack_id] = replicas
        return replicas

    def forget_pack(self, pack_id: str) -> None:
        self._replicas.pop(pack_id, None)

    def read_record(
        self, location_id: int, volume_id: int, pack_id: str, offset: int, stored_length: int
    ) -> bytes:
        backend = self.backends.get(location_id)
        if backend is None:
            raise BackendError(f"storage location {location_id} is not attached to this process")
        return backend.read(pack_object_name(volume_id, pack_id), offset, RECORD_HEADER_SIZE + stored_length)

    def read_blob(
        self, volume_id: int, blob_id: bytes, location: BlobLocation, policy: codecs.CodecPolicy
    ) -> codecs.Buffer:
        """The blob's plaintext, from the first replica whose copy verifies."""
        failures: list[str] = []
        for refresh in (False, True):
            for location_id in self.replicas_of(location.pack_id, refresh=refresh):
                try:
                    record = self.read_record(
                        location_id, volume_id, location.pack_id, location.offset, location.stored_length
                    )
                    header, payload = check_record(record, blob_id, decoding=True)
                    return codecs.decode(policy, blob_id, header.codec, payload, header.length)
                except (BackendError, ValueError, IntegrityError) as error:
                    failures.append(f"location {location_id}: {error}")
                    if self.on_bad_replica is not None:
                        self.on_bad_replica(location.pack_id, location_id, str(error))
        raise IntegrityError(
            f"blob {blob_id.hex()[:16]}… in pack {location.pack_id}: no replica verifies "
            f"({'; '.join(failures)})"
        )

    def close(self) -> None:
        with self._lock:
            for writer in self._writers.values():
                with contextlib.suppress(Exception):
                    writer.release()
            self._writers.clear()
        self.io_pool.shutdown(wait=True)
        for backend in self.backends.values():
            backend.close()


# A gathered write takes up to this many buffers or bytes: far fewer calls than one per record, yet
# small enough that the kernel's copy stays fast (measured: 1 MB per call costs half the CPU of one
# call per 64 KB record, and calls of 4 MB or more cost up to three times as much).
_GATHER_PARTS = 64
_GATHER_BYTES = 1024 * 1024


@dataclass(frozen=True)
class NewRecord:
    """A blob for ``PackWriter.append_many``: its id, codec, plaintext length, payload (as stored)
    and the payload's CRC-32 where the caller computed it (None: computed here, if the codec has one)."""

    blob_id: bytes
    codec: int
    length: int
    payload: codecs.Buffer
    payload_crc: int | None = None


@dataclass
class _OpenPack:
    row: PackRow
    handles: dict[int, AppendHandle]
    size: int
    added: int = 0
    dirty: bool = False
    syncs: list[Future[None]] = field(default_factory=list)  # every fsync asked of its handles


@dataclass
class _Upload:
    pack_id: str
    data: bytearray = field(default_factory=bytearray)
    count: int = 0


class PackWriter:
    """Appends one volume's blobs to packs; one per volume per process, safe across threads."""

    def __init__(self, store: BlobStore, volume_id: int, placement: Placement) -> None:
        self.store = store
        self.volume_id = volume_id
        self.placement = placement
        self.replication = max(1, min(placement.replication, store.max_replication()))
        self.min_replication = max(1, min(placement.min_replication, self.replication))
        self.lock = threading.RLock()
        self._open: _OpenPack | None = None
        self._to_seal: list[_OpenPack] = []
        self._syncs: list[tuple[_OpenPack, int, Future[None]]] = []
        self._upload: _Upload | None = None
        self._uploads: list[tuple[PackRow, Future[tuple[int, ...]]]] = []
        # Each caller (owner) records only its own blobs: several threads share this writer.
        self._owners = itertools.count(1)
        self._pending: dict[int, list[tuple[bytes, BlobLocation]]] = {}
        self._stored_rows: dict[str, PackRow] = {}  # uploaded packs, for their owners' transactions
        self._failed: set[str] = set()  # packs that could not be made durable at min replication
        self._closing: list[_OpenPack] = []  # sealed packs whose handles close once their fsyncs end

    # -- writing -------------------------------------------------------------------------------

    def new_owner(self) -> int:
        """A token for one caller: ``flush(owner)`` returns that caller's blobs and no one else's."""
        return next(self._owners)

    def append(
        self,
        blob_id: bytes,
        codec: int,
        length: int,
        payload: codecs.Buffer,
        *,
        owner: int = 0,
        payload_crc: int | None = None,
    ) -> BlobLocation:
        """Queue a blob for ``owner``'s next flush; the location is valid once that flush returns.
        ``payload_crc``: the payload's CRC-32, if the caller computed it (in parallel) already."""
        if self.store.appendable and self.placement.packing:
            return self.append_many([NewRecord(blob_id, codec, length, payload, payload_crc)], owner=owner)[0]
        record = (encode_record_header(blob_id, codec, length, payload, payload_crc), payload)
        size = len(record[0]) + len(payload)
        with self.lock:
            location = self._append_to_upload(blob_id, codec, length, size, record)
            self._pending.setdefault(owner, []).append((blob_id, location))
            return location

    def append_many(self, records: list[NewRecord], *, owner: int = 0) -> list[BlobLocation]:
        """``append`` for many blobs at once: on a local pack, one gathered write (``pwritev``) per
        megabyte or 32 records instead of one per blob, under one acquisition of the lock."""
        if not (self.store.appendable and self.placement.packing):
            return [
                self.append(r.blob_id, r.codec, r.length, r.payload, owner=owner, payload_crc=r.payload_crc)
                for r in records
            ]
        locations: list[BlobLocation] = []
        with self.lock:
            pending: list[codecs.Buffer] = []
            pending_bytes = 0
            pack: _OpenPack | None = None
            for item in records:
                head = encode_record_header(
                    item.blob_id, item.codec, item.length, item.payload, item.payload_crc
                )
                size = len(head) + len(item.payload)
                pack = self._open
                if pack is None or (
                    pack.size > PACK_HEADER_SIZE and pack.size + size > self.store.pack_target_size
                ):
                    if pack is not None:
                        self._write_parts(pack, pending)
                        pending, pending_bytes = [], 0
                        self._rotate()
                    pack = self._open = self._claim_or_create()
                offset = pack.size
                pending += (head, item.payload)
                pending_bytes += size
                pack.size += size
                pack.added += 1
                pack.dirty = True
                locations.append(
                    BlobLocation(pack.row.pack_id, offset, size - RECORD_HEADER_SIZE, item.length, item.codec)
                )
                if len(pending) >= _GATHER_PARTS or pending_bytes >= _GATHER_BYTES:
                    self._write_parts(pack, pending)
                    pending, pending_bytes = [], 0
            if pack is not None and pending:
                self._write_parts(pack, pending)
            self._pending.setdefault(owner, []).extend(
                (item.blob_id, location) for item, location in zip(records, locations, strict=True)
            )
        return locations

    def _write_parts(self, pack: _OpenPack, parts: list[codecs.Buffer]) -> None:
        """Append ``parts`` (records' headers and payloads, in order) to every replica of ``pack``."""
        for location_id, handle in list(pack.handles.items()):
            try:
                handle.write(*parts)
            except OSError as error:
                self._drop_replica(pack, location_id, str(error))
        if not pack.handles:
            raise Unavailable(f"no data directory accepted a write to pack {pack.row.pack_id}")

    def _append_to_upload(
        self, blob_id: bytes, codec: int, length: int, size: int, record: tuple[bytes, codecs.Buffer]
    ) -> BlobLocation:
        upload = self._upload
        if upload is not None and (
            not self.placement.packing or len(upload.data) + size > self.store.pack_target_size
        ):
            self._start_upload()
            upload = None
        if upload is None:
            pack_id = new_pack_id()
            upload = self._upload = _Upload(pack_id, bytearray(encode_pack_header(pack_id, self.volume_id)))
        offset = len(upload.data)
        upload.data += record[0]
        upload.data += record[1]
        upload.count += 1
        return BlobLocation(upload.pack_id, offset, size - RECORD_HEADER_SIZE, length, codec)

    def _start_upload(self) -> None:
        upload, self._upload = self._upload, None
        if upload is None:
            return
        locations = self.store.choose_locations(self.replication)
        now = self.store.clock.now_ms()
        row = PackRow(
            upload.pack_id,
            self.volume_id,
            "sealed",
            locations,
            len(upload.data),
            upload.count,
            None,
            now,
            now,
        )
        data = bytes(upload.data)
        future = self.store.io_pool.submit(self._put_replicas, row, data)
        self._uploads.append((row, future))

    def _put_replicas(self, row: PackRow, data: bytes) -> tuple[int, ...]:
        name = pack_object_name(self.volume_id, row.pack_id)
        stored: list[int] = []
        for location_id in row.replicas:
            try:
                self.store.backends[location_id].put(name, data)
                stored.append(location_id)
            except OSError as error:
                self._report(row.pack_id, location_id, str(error))
        return tuple(stored)

    # -- durability ------------------------------------------------------------------------------

    def flush(self, owner: int = 0) -> FlushResult:
        """Make everything queued durable on at least min replication; return what ``owner`` must
        record in its transaction: its blobs, and the rows of the packs that hold them.

        The fsyncs and uploads are waited for without holding the writer's lock, so other threads
        keep appending (their next batch) while this one waits for the disk.
        """
        with self.lock:
            mine = self._pending.pop(owner, [])
            self._close_finished()
            pending = [pack for pack in (*self._to_seal, self._open) if pack is not None and pack.dirty]
            for pack in pending:
                pack.dirty = False
                pack.added = 0
                for location_id, handle in pack.handles.items():
                    self._sync(pack, location_id, handle)
            syncs, self._syncs = self._syncs, []
            sealing, self._to_seal = self._to_seal, []
            self._start_upload()
            uploads, self._uploads = self._uploads, []
        failures: list[tuple[_OpenPack, int, str]] = []
        for pack, location_id, future in syncs:
            try:
                future.result()
            except OSError as error:
                failures.append((pack, location_id, str(error)))
        stored_by_upload: list[tuple[PackRow, tuple[int, ...]]] = []
        for row, upload in uploads:
            try:
                stored_by_upload.append((row, upload.result()))
            except OSError:
                stored_by_upload.append((row, ()))
        with self.lock:
            for pack, location_id, reason in failures:
                self._drop_replica(pack, location_id, reason)
            for pack in pending:
                if len(pack.handles) < self.min_replication:
                    # Nothing in it is acknowledged; its owners' flushes fail. Never append to it again.
                    self._failed.add(pack.row.pack_id)
                    if pack is self._open:
                        self._open = None
                        sealing.append(pack)
            self._seal(sealing)
            for row, stored in stored_by_upload:
                if len(stored) < self.min_replication:
                    self._failed.add(row.pack_id)
                    continue
                self._stored_rows[row.pack_id] = PackRow(
                    row.pack_id,
                    row.volume_id,
                    row.state,
                    stored,
                    row.size,
                    row.blob_count,
                    None,
                    row.created_at,
                    row.sealed_at,
                )
                self.store._replicas[row.pack_id] = stored
            return self._result_for(mine)

    def _sync(self, pack: _OpenPack, location_id: int, handle: AppendHandle) -> None:
        future = self.store.io_pool.submit(handle.sync)
        pack.syncs = [*(earlier for earlier in pack.syncs if not earlier.done()), future]
        self._syncs.append((pack, location_id, future))

    def _result_for(self, mine: list[tuple[bytes, BlobLocation]]) -> FlushResult:
        result = FlushResult(self.volume_id)
        growth: dict[str, tuple[int, int]] = {}
        for blob_id, location in mine:
            if location.pack_id in self._failed:
                raise Unavailable(f"pack {location.pack_id} did not reach its minimum replication")
            result.blobs[blob_id] = location
            row = self._stored_rows.get(location.pack_id)
            if row is not None:
                if row not in result.new_packs:
                    result.new_packs.append(row)
                continue
            end = location.offset + RECORD_HEADER_SIZE + location.stored_length
            previous_end, count = growth.get(location.pack_id, (0, 0))
            growth[location.pack_id] = (max(previous_end, end), count + 1)
        result.pack_growth = growth
        self._forget_settled()
        return result

    def _seal(self, sealing: list[_OpenPack]) -> None:
        if not sealing:
            return
        now = self.store.clock.now_ms()
        # Not durable on its own: a seal lost with the machine leaves an open pack whose writer is gone,
        # which the next writer takes over (cut to its committed size). Any later durable commit (the
        # batch that made these packs' blobs durable commits right after) makes it durable too.
        with self.store.catalog.write(durable=False) as conn:
            for pack in sealing:
                conn.execute(
                    packs.update()
                    .where(packs.c.id == pack.row.pack_id)
                    .values(
                        state="sealed",
                        writer=None,
                        sealed_at=now,
                        size=sa.case((packs.c.size < pack.size, pack.size), else_=packs.c.size),
                    )
                )
        self._closing.extend(sealing)
        self._close_finished()

    def _close_finished(self) -> None:
        """Close sealed packs' handles once no fsync (another thread's included) still uses them."""
        still: list[_OpenPack] = []
        for pack in self._closing:
            if all(future.done() for future in pack.syncs):
                for handle in pack.handles.values():
                    handle.release_cache()
                    handle.close()
            else:
                still.append(pack)
        self._closing = still

    def _forget_settled(self) -> None:
        """Drop uploaded-pack rows and failures no pending owner still needs."""
        wanted = {location.pack_id for blobs in self._pending.values() for _blob_id, location in blobs}
        self._stored_rows = {key: row for key, row in self._stored_rows.items() if key in wanted}
        self._failed &= wanted

    # -- pack lifecycle --------------------------------------------------------------------------

    def _rotate(self) -> None:
        pack, self._open = self._open, None
        if pack is None:
            return
        # Start writing the full pack back now so the final flush has less to wait for.
        for location_id, handle in pack.handles.items():
            self._sync(pack, location_id, handle)
        self._to_seal.append(pack)

    def _claim_or_create(self) -> _OpenPack:
        store = self.store
        fresh = True
        # Not durable on its own: nothing in a claimed or new pack counts until a durable commit of
        # the blobs in it, which (commits being ordered in the log) makes this one durable first.
        with store.catalog.write(durable=False) as conn:
            rows = conn.execute(
                sa.select(packs)
                .where(packs.c.volume_id == self.volume_id, packs.c.state == "open")
                .order_by(packs.c.size.desc())
                .limit(20)
            ).all()
            for raw in rows:
                row = pack_row(raw)
                if row.size >= store.pack_target_size or not _writer_is_gone(row.writer):
                    continue
                if len([r for r in row.replicas if r in store.backends]) < self.min_replication:
                    continue
                owner_matches = (
                    packs.c.writer.is_(None) if row.writer is None else packs.c.writer == row.writer
                )
                claimed = conn.execute(
                    packs.update()
                    .where(packs.c.id == row.pack_id, owner_matches)
                    .values(writer=store.writer_id)
                )
                if claimed.rowcount == 1:
                    fresh = row.size <= PACK_HEADER_SIZE
                    break
            else:
                locations = store.choose_locations(self.replication)
                row = PackRow(
                    new_pack_id(),
                    self.volume_id,
                    "open",
                    locations,
                    PACK_HEADER_SIZE,
                    0,
                    store.writer_id,
                    store.clock.now_ms(),
                )
                conn.execute(packs.insert().values(**row.as_values()))
        # Outside the transaction: opening may record a lost replica in a transaction of its own.
        return self._open_handles(row, fresh=fresh)

    def _open_handles(self, row: PackRow, *, fresh: bool) -> _OpenPack:
        name = pack_object_name(self.volume_id, row.pack_id)
        handles: dict[int, AppendHandle] = {}
        for location_id in row.replicas:
            backend = self.store.backends.get(location_id)
            if backend is None:
                continue
            try:
                if fresh:
                    handle = backend.open_append(name, truncate_to=0)
                    handle.write(encode_pack_header(row.pack_id, self.volume_id))
                else:
                    existing = backend.stat(name)
                    if existing is None or existing.size < row.size:
                        self._report(row.pack_id, location_id, "replica shorter than its committed size")
                        continue
                    # Cut off whatever a crashed writer appended but never acknowledged.
                    handle = backend.open_append(name, truncate_to=row.size)
            except OSError as error:
                self._report(row.pack_id, location_id, str(error))
                continue
            handles[location_id] = handle
        size = PACK_HEADER_SIZE if fresh else row.size
        pack = _OpenPack(row, handles, size, dirty=fresh)
        if set(handles) != set(row.replicas):
            self._record_replicas(pack)
        if len(handles) < self.min_replication:
            self._release_pack(pack)
            raise Unavailable(
                f"only {len(handles)} of {self.min_replication} required data directories "
                f"can take pack {row.pack_id}"
            )
        return pack

    def _drop_replica(self, pack: _OpenPack, location_id: int, reason: str) -> None:
        handle = pack.handles.pop(location_id, None)
        if handle is not None:
            handle.close()
        self._report(pack.row.pack_id, location_id, reason)
        self._record_replicas(pack)

    def _record_replicas(self, pack: _OpenPack) -> None:
        replicas = tuple(location for location in pack.row.replicas if location in pack.handles)
        with self.store.catalog.write() as conn:
            conn.execute(
                packs.update()
                .where(packs.c.id == pack.row.pack_id)
                .values(replicas=format_replicas(replicas))
            )
        self.store.forget_pack(pack.row.pack_id)

    def _report(self, pack_id: str, location_id: int, reason: str) -> None:
        if self.store.on_bad_replica is not None:
            self.store.on_bad_replica(pack_id, location_id, reason)

    def _release_pack(self, pack: _OpenPack) -> None:
        for handle in pack.handles.values():
            handle.close()
        with self.store.catalog.write() as conn:
            conn.execute(
                packs.update()
                .where(packs.c.id == pack.row.pack_id, packs.c.writer == self.store.writer_id)
                .values(writer=None)
            )

    def release(self) -> None:
        """Flush what is queued and give the open pack back so another process may append to it."""
        with self.lock:
            if self._open is not None or self._to_seal or self._upload is not None or self._uploads:
                with contextlib.suppress(Exception):
                    self.flush(owner=-1)
            if self._open is not None:
                self._release_pack(self._open)
                self._open = None
            for pack in self._closing:
                for future in pack.syncs:
                    with contextlib.suppress(Exception):
                        future.result()
                for handle in pack.handles.values():
                    handle.close()
            self._closing = []


def _writer_is_gone(writer: str | None) -> bool:
    """A pack can be taken over if nobody holds it, or its holder on this host has exited."""
    if writer is None:
        return True
    host, _, rest = writer.partition(":")
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(rest.split(":")[0]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False
