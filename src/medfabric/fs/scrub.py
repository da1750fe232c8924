"""Scrub: read every replica of every pack, verify every record, and repair what a good copy allows.

Replicas are byte-identical, so the good image of a pack is, record by record, the bytes of any
replica whose record checks (magic, header CRC, payload CRC; indexed records also decode to
their blob id). A bad or missing replica is rewritten whole from that image; a pack with too few
replicas gets new ones. Blobs bad at every replica are handed back for the caller to recover
elsewhere (a mirror) or to report with the paths that use them. Never changes a blob's bytes.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.blobstore import codec as codecs
from medfabric.blobstore.backend import Backend
from medfabric.blobstore.index import FlushResult, PackRow, commit_flush, format_replicas
from medfabric.blobstore.pack import (
    PACK_HEADER_SIZE,
    RECORD_HEADER_SIZE,
    decode_pack_header,
    decode_record_header,
    pack_object_name,
    payload_checks,
)
from medfabric.blobstore.store import BlobStore, PackWriter, Placement
from medfabric.catalog.schema import blobs, contents, entries, extents, packs, snapshots
from medfabric.fs.model import Volume
from medfabric.fs.namespace import ROOT_PARENT, get_by_ino


@dataclass(frozen=True)
class IndexedBlob:
    blob_id: bytes
    stored_length: int
    length: int
    codec: int


@dataclass(frozen=True)
class Finding:
    pack_id: str
    location_id: int
    problem: str  # missing | short | header | record | unreadable | unattached
    detail: str

    def as_json(self) -> dict[str, object]:
        return {
            "pack": self.pack_id,
            "location": self.location_id,
            "problem": self.problem,
            "detail": self.detail,
        }


@dataclass
class PackScan:
    row: PackRow
    findings: list[Finding] = field(default_factory=list)
    good_locations: list[int] = field(default_factory=list)
    fixable: set[int] = field(default_factory=set)  # replicas a good copy elsewhere can mend
    readable: list[int] = field(default_factory=list)  # replicas present at their full size
    bad_blobs: list[tuple[bytes, int, int]] = field(
        default_factory=list
    )  # (id, offset, stored): intact nowhere
    garbage: list[int] = field(default_factory=list)  # unreferenced records intact nowhere (harmless)
    image: bytes | None = None  # the pack as it should be (None: nothing readable at all)
    blobs_checked: int = 0
    bytes_read: int = 0


def indexed_records(conn: Connection, pack_id: str) -> dict[int, IndexedBlob]:
    return {
        int(offset): IndexedBlob(bytes(blob_id), int(stored), int(length), int(codec))
        for blob_id, offset, stored, length, codec in conn.execute(
            sa.select(
                blobs.c.blob_id, blobs.c.offset, blobs.c.stored_length, blobs.c.length, blobs.c.codec
            ).where(blobs.c.pack_id == pack_id)
        )
    }


def scan_pack(
    store: BlobStore, row: PackRow, indexed: dict[int, IndexedBlob], policy: codecs.CodecPolicy
) -> PackScan:
    """Read each replica of the pack up to its committed size and check every byte of it."""
    scan = PackScan(row)
    name = pack_object_name(row.volume_id, row.pack_id)
    copies: dict[int, bytes] = {}
    for location_id in row.replicas:
        backend = store.backends.get(location_id)
        if backend is None:
            scan.findings.append(
                Finding(row.pack_id, location_id, "unattached", "location not attached here")
            )
            continue
        info = backend.stat(name)
        if info is None:
            scan.findings.append(Finding(row.pack_id, location_id, "missing", f"no object at {backend.uri}"))
            scan.fixable.add(location_id)
            continue
        if info.size < row.size:
            scan.findings.append(
                Finding(row.pack_id, location_id, "short", f"{backend.uri}: {info.size} of {row.size} bytes")
            )
            scan.fixable.add(location_id)
            continue
        try:
            copies[location_id] = backend.read(name, 0, row.size)
        except OSError as error:
            scan.findings.append(Finding(row.pack_id, location_id, "unreadable", str(error)))
            scan.fixable.add(location_id)
            continue
        scan.bytes_read += row.size
    scan.readable = list(copies)
    if not copies:
        scan.bad_blobs = [
            (blob.blob_id, offset, blob.stored_length) for offset, blob in sorted(indexed.items())
        ]
        scan.fixable.clear()
        return scan
    bad_at: dict[int, list[str]] = {location_id: [] for location_id in copies}
    image = bytearray(next(iter(copies.values())))
    header_ok = [loc for loc, data in copies.items() if _header_checks(data, row)]
    for location_id in copies:
        if location_id not in header_ok:
            bad_at[location_id].append("pack header")
            if header_ok:
                scan.fixable.add(location_id)
    if header_ok:
        image[:PACK_HEADER_SIZE] = copies[header_ok[0]][:PACK_HEADER_SIZE]
    offset = PACK_HEADER_SIZE
    following = sorted(indexed)
    while offset < row.size:
        expected = indexed.get(offset)
        good: list[int] = []
        end = 0
        for location_id, data in copies.items():
            record_end = _record_end(data, offset, row.size, expected, policy)
            if record_end is not None:
                good.append(location_id)
                end = record_end
        if expected is not None:
            scan.blobs_checked += 1
        if good:
            image[offset:end] = copies[good[0]][offset:end]
        else:
            if expected is not None:
                end = offset + RECORD_HEADER_SIZE + expected.stored_length
                scan.bad_blobs.append((expected.blob_id, offset, expected.stored_length))
            else:  # bytes no blob uses (a moved or deleted blob's record): skip to the next one used
                end = next((start for start in following if start > offset), row.size)
                scan.garbage.append(offset)
        for location_id in copies:
            if location_id not in good and (good or expected is not None):
                bad_at[location_id].append(f"record at {offset}")
                if good:
                    scan.fixable.add(location_id)
        offset = max(end, offset + 1)
    scan.image = bytes(image)
    for location_id, problems in bad_at.items():
        if problems:
            kind = "header" if problems == ["pack header"] else "record"
            detail = ", ".join(problems[:5]) + (f" and {len(problems) - 5} more" if len(problems) > 5 else "")
            scan.findings.append(Finding(row.pack_id, location_id, kind, detail))
        else:
            scan.good_locations.append(location_id)
    return scan


def patch_record(scan: PackScan, offset: int, record: bytes) -> bool:
    """Put a recovered record back where the bad one was, if it has exactly its length (a
    byte-identical copy from a mirror does); every replica then gets the patched image."""
    stored = next((length for _blob, at, length in scan.bad_blobs if at == offset), None)
    if scan.image is None or stored is None or len(record) != RECORD_HEADER_SIZE + stored:
        return False
    image = bytearray(scan.image)
    image[offset : offset + len(record)] = record
    scan.image = bytes(image)
    scan.fixable.update(scan.readable)
    return True


def _header_checks(data: bytes, row: PackRow) -> bool:
    try:
        header = decode_pack_header(data[:PACK_HEADER_SIZE])
    except ValueError:
        return False
    flags = int.from_bytes(data[28:32], "little")
    return header.pack_id == row.pack_id and header.volume_id == row.volume_id and flags == 0


def _record_end(
    data: bytes, offset: int, size: int, expected: IndexedBlob | None, policy: codecs.CodecPolicy
) -> int | None:
    """Where the record at ``offset`` ends if it checks in this copy (None if it does not)."""
    try:
        header = decode_record_header(data[offset : offset + RECORD_HEADER_SIZE])
    except ValueError:
        return None
    end = offset + RECORD_HEADER_SIZE + header.stored_length
    if end > size:
        return None
    payload = memoryview(data)[offset + RECORD_HEADER_SIZE : end]
    if not payload_checks(header, payload):
        return None
    if expected is not None:
        if (header.blob_id, header.stored_length, header.codec) != (
            expected.blob_id,
            expected.stored_length,
            expected.codec,
        ):
            return None
        try:
            codecs.decode(policy, header.blob_id, header.codec, payload, header.length)
        except Exception:  # noqa: BLE001 - any failure to decode means this copy is bad
            return None
    return end


def repair_pack(
    store: BlobStore, scan: PackScan, wanted_replicas: int, writer_id: str
) -> tuple[list[int], list[int], bool]:
    """Rewrite every bad or missing replica from the good image and add replicas up to
    ``wanted_replicas``. Returns (rewritten, added, busy): busy when a live writer holds the pack."""
    row = scan.row
    if scan.image is None:
        return [], [], False
    if not _claim(store, row, writer_id):
        return [], [], True
    try:
        name = pack_object_name(row.volume_id, row.pack_id)
        rewritten: list[int] = []
        for location_id in sorted(scan.fixable):
            backend = store.backends.get(location_id)
            if backend is not None:
                _replace(backend, name, scan.image)
                rewritten.append(location_id)
        replicas = list(row.replicas)
        usable = [loc for loc in replicas if loc in scan.readable or loc in rewritten]
        added: list[int] = []
        spare = [loc for loc in store.choose_locations(len(store.backends)) if loc not in replicas]
        while len(usable) + len(added) < wanted_replicas and spare:
            location_id = spare.pop(0)
            _replace(store.backends[location_id], name, scan.image)
            added.append(location_id)
        if added:
            with store.catalog.write() as conn:
                conn.execute(
                    packs.update()
                    .where(packs.c.id == row.pack_id)
                    .values(replicas=format_replicas((*replicas, *added)))
                )
        store.forget_pack(row.pack_id)
        return rewritten, added, False
    finally:
        _release(store, row, writer_id)


def _replace(backend: Backend, name: str, image: bytes) -> None:
    """Put the good image in place of a bad copy. The bad one is deleted first: a backend may
    keep a handle on the old object (a local directory keeps open descriptors), and deleting is
    what makes it let go. Only bad copies are ever replaced, so the gap loses nothing."""
    backend.delete(name)
    backend.put(name, image)


def _claim(store: BlobStore, row: PackRow, writer_id: str) -> bool:
    """An open pack is repaired only while no live writer appends to it (we hold it meanwhile)."""
    if row.state != "open":
        return True
    with store.catalog.write() as conn:
        current = conn.execute(sa.select(packs.c.writer).where(packs.c.id == row.pack_id)).scalar()
        if current is not None and not _holder_is_gone(str(current)):
            return False
        holder = packs.c.writer.is_(None) if current is None else packs.c.writer == current
        return bool(
            conn.execute(
                packs.update().where(packs.c.id == row.pack_id, holder).values(writer=writer_id)
            ).rowcount
        )


def _release(store: BlobStore, row: PackRow, writer_id: str) -> None:
    if row.state == "open":
        with store.catalog.write() as conn:
            conn.execute(
                packs.update()
                .where(packs.c.id == row.pack_id, packs.c.writer == writer_id)
                .values(writer=None)
            )


def _holder_is_gone(holder: str) -> bool:
    host, _, rest = holder.partition(":")
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(rest.split(":")[0]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def relocate(
    store: BlobStore, volume_id: int, placement: Placement, recovered: list[tuple[bytes, int, int, bytes]]
) -> int:
    """Store recovered blobs (id, codec, length, payload) in a new pack and point the index at it;
    the bad records stay where they were, unreferenced, until compaction drops them."""
    if not recovered:
        return 0
    writer = PackWriter(store, volume_id, placement)
    try:
        for blob_id, codec, length, payload in recovered:
            writer.append(blob_id, codec, length, payload)
        result = writer.flush()
        with store.catalog.write() as conn:
            commit_flush(conn, FlushResult(volume_id, result.new_packs, result.pack_growth, {}))
            for blob_id, location in result.blobs.items():
                conn.execute(
                    blobs.update()
                    .where(blobs.c.volume_id == volume_id, blobs.c.blob_id == blob_id)
                    .values(
                        pack_id=location.pack_id,
                        offset=location.offset,
                        stored_length=location.stored_length,
                        length=location.length,
                        codec=location.codec,
                    )
                )
        return len(result.blobs)
    finally:
        writer.release()


PathOf = Callable[[Volume, int, int | None], str]


def affected_paths(conn: Connection, volume: Volume, blob_id: bytes) -> list[str]:
    """Every path, live or in a snapshot, whose bytes include the blob."""
    using = sa.select(extents.c.content_id).where(extents.c.blob_id == blob_id)
    rows = conn.execute(
        sa.select(entries.c.ino, entries.c.born, entries.c.died).where(
            entries.c.volume_id == volume.id,
            entries.c.content_id.in_(
                sa.select(contents.c.id).where(contents.c.volume_id == volume.id, contents.c.id.in_(using))
            ),
        )
    ).all()
    taken = conn.execute(
        sa.select(snapshots.c.name, snapshots.c.version).where(snapshots.c.volume_id == volume.id)
    ).all()
    base = (volume.mount_path or f"{volume.name}:").rstrip("/")
    found: list[str] = []
    for ino, born, died in rows:
        if died is None:
            found.append(base + _path_inside(conn, volume.id, int(ino), None))
        for name, version in taken:
            if int(born) <= int(version) and (died is None or int(died) > int(version)):
                found.append(
                    f"{base}/.snapshot/{name}" + _path_inside(conn, volume.id, int(ino), int(version))
                )
    return sorted(set(found))


def _path_inside(conn: Connection, volume_id: int, ino: int, version: int | None) -> str:
    names: list[str] = []
    while True:
        entry = get_by_ino(conn, volume_id, ino, version)
        if entry is None:
            return "/?/" + "/".join(reversed(names))
        if entry.parent_ino == ROOT_PARENT:
            return "/" + "/".join(reversed(names))
        names.append(entry.name)
        ino = entry.parent_ino
