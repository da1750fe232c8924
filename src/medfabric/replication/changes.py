"""The source end of a sync, in the catalog: the rows that changed between two versions, the
blobs they need, and a volume's manifest at a version.

Read-only queries inside the caller's transaction. Between versions A and B the increment is the
rows born in (A, B] that B still sees (``add``) and the rows A saw that died in (A, B] (``drop``);
both stay queryable as long as snapshots A and B exist, whatever the live volume does meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import blake3
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.blobstore.codec import Buffer
from medfabric.blobstore.index import lookup_blobs
from medfabric.blobstore.pack import check_record
from medfabric.blobstore.store import BlobStore
from medfabric.catalog.engine import chunked
from medfabric.catalog.schema import contents, entries, extents
from medfabric.errors import IntegrityError, MedfabricError, NotFound
from medfabric.fs.content import Extent
from medfabric.fs.model import KIND_DIR, KIND_FILE, KIND_NAMES, KIND_TABLE
from medfabric.fs.namespace import ROOT_PARENT, visible_at
from medfabric.fs.reader import FileReader
from medfabric.replication.transport import (
    ChangePage,
    ContentRow,
    EntryRow,
    ExtentRow,
    ManifestEntry,
    TransferBlob,
)

_ROW_COLUMNS = [
    entries.c.id,
    entries.c.born,
    entries.c.parent_ino,
    entries.c.name,
    entries.c.ino,
    entries.c.kind,
    entries.c.mode,
    entries.c.owner,
    entries.c.grp,
    entries.c.size,
    entries.c.mtime_ns,
    entries.c.ctime_ns,
    entries.c.atime_ns,
    entries.c.content_id,
    entries.c.target,
    entries.c.aces,
]


def change_page(
    conn: Connection, volume_id: int, since: int, upto: int, after: int, limit: int
) -> ChangePage:
    born_in = sa.and_(
        entries.c.born > since,
        entries.c.born <= upto,
        sa.or_(entries.c.died.is_(None), entries.c.died > upto),
    )
    died_in = sa.and_(entries.c.born <= since, entries.c.died > since, entries.c.died <= upto)
    rows = conn.execute(
        sa.select(*_ROW_COLUMNS)
        .where(
            entries.c.volume_id == volume_id,
            entries.c.id > after,
            entries.c.kind != KIND_TABLE,  # JSON tables live in SQL tables of their own: not mirrored
            sa.or_(born_in, died_in) if since > 0 else born_in,
        )
        .order_by(entries.c.id)
        .limit(limit)
    ).all()
    page = tuple(
        EntryRow(
            "add" if row.born > since else "drop",
            int(row.id),
            int(row.parent_ino),
            str(row.name),
            int(row.ino),
            str(row.kind),
            int(row.mode),
            str(row.owner),
            str(row.grp),
            int(row.size),
            int(row.mtime_ns),
            int(row.ctime_ns),
            int(row.atime_ns),
            None if row.content_id is None else int(row.content_id),
            row.target,
            row.aces,
        )
        for row in rows
    )
    wanted = sorted({row.content_id for row in page if row.op == "add" and row.content_id is not None})
    return ChangePage(
        page, tuple(load_contents(conn, wanted)), page[-1].source_id if page else after, len(page) < limit
    )


def load_contents(conn: Connection, content_ids: Sequence[int]) -> list[ContentRow]:
    bodies: dict[int, tuple[int, bytes | None, int]] = {}
    parts: dict[int, list[ExtentRow]] = {}
    for part in chunked(list(content_ids)):
        for content_id, size, digest, created in conn.execute(
            sa.select(contents.c.id, contents.c.size, contents.c.digest, contents.c.created_at).where(
                contents.c.id.in_(part)
            )
        ):
            bodies[int(content_id)] = (int(size), None if digest is None else bytes(digest), int(created))
        for content_id, seq, offset, length, blob_id, blob_offset in conn.execute(
            sa.select(
                extents.c.content_id,
                extents.c.seq,
                extents.c.file_offset,
                extents.c.length,
                extents.c.blob_id,
                extents.c.blob_offset,
            )
            .where(extents.c.content_id.in_(part))
            .order_by(extents.c.content_id, extents.c.seq)
        ):
            parts.setdefault(int(content_id), []).append(
                ExtentRow(
                    int(seq),
                    int(offset),
                    int(length),
                    None if blob_id is None else bytes(blob_id),
                    int(blob_offset),
                )
            )
    missing = [content_id for content_id in content_ids if content_id not in bodies]
    if missing:
        raise IntegrityError(f"content {missing[0]} named by a namespace row is missing from the catalog")
    return [
        ContentRow(content_id, *bodies[content_id], tuple(parts.get(content_id, ())))
        for content_id in content_ids
    ]


def read_blobs(
    conn: Connection, store: BlobStore, volume_id: int, blob_ids: Sequence[bytes]
) -> list[TransferBlob]:
    """Each blob's stored record from the first replica whose checksums verify."""
    locations = lookup_blobs(conn, volume_id, list(blob_ids))
    found: list[TransferBlob] = []
    for blob_id in blob_ids:
        location = locations.get(blob_id)
        if location is None:
            raise NotFound(f"blob {blob_id.hex()[:16]}… is not in volume {volume_id}'s blob index")
        failures: list[str] = []
        for location_id in store.replicas_of(location.pack_id, refresh=False):
            try:
                record = store.read_record(
                    location_id, volume_id, location.pack_id, location.offset, location.stored_length
                )
                header, payload = check_record(record, blob_id)
            except (OSError, ValueError) as error:
                failures.append(f"location {location_id}: {error}")
                continue
            found.append(TransferBlob(blob_id, header.codec, header.length, bytes(payload)))
            break
        else:
            raise IntegrityError(
                f"blob {blob_id.hex()[:16]}… in pack {location.pack_id}: no replica verifies "
                f"({'; '.join(failures)}); run `medfabric scrub -repair`"
            )
    return found


Fetch = Callable[[bytes], Buffer]


def manifest(
    conn: Connection, volume_id: int, version: int | None, fetch: Fetch, *, rehash: bool
) -> list[ManifestEntry]:
    """Every path of the volume at ``version`` (None: live), sorted, with each file's digest:
    the one the catalog recorded, unless ``rehash`` or none was recorded: then its bytes' hash."""
    rows = conn.execute(
        sa.select(*_ROW_COLUMNS).where(
            entries.c.volume_id == volume_id, visible_at(version), entries.c.kind != KIND_TABLE
        )
    ).all()
    by_ino = {int(row.ino): row for row in rows}
    digests: dict[int, bytes | None] = {}
    content_ids = [int(row.content_id) for row in rows if row.content_id is not None]
    for part in chunked(content_ids):
        digests.update(
            (int(content_id), None if digest is None else bytes(digest))
            for content_id, digest in conn.execute(
                sa.select(contents.c.id, contents.c.digest).where(contents.c.id.in_(part))
            )
        )
    paths: dict[int, str] = {}

    def path_of(ino: int) -> str:
        known = paths.get(ino)
        if known is not None:
            return known
        row = by_ino[ino]
        if row.parent_ino == ROOT_PARENT:
            result = "/"
        else:
            parent = path_of(int(row.parent_ino)) if int(row.parent_ino) in by_ino else "/?"
            result = parent.rstrip("/") + "/" + str(row.name)
        paths[ino] = result
        return result

    listing: list[ManifestEntry] = []
    for ino, row in by_ino.items():
        digest: bytes | None = None
        unreadable: str | None = None
        if row.kind == KIND_FILE and row.content_id is not None:
            digest = None if rehash else digests.get(int(row.content_id))
            if digest is None:
                try:
                    digest = _hash_body(conn, int(row.content_id), int(row.size), fetch)
                except MedfabricError as error:  # reported as this path's difference
                    unreadable = f"unreadable: {error.message}"
        listing.append(
            ManifestEntry(
                path_of(ino),
                KIND_NAMES.get(str(row.kind), str(row.kind)),
                0 if row.kind == KIND_DIR else int(row.size),
                int(row.mode),
                str(row.owner),
                str(row.grp),
                row.target,
                unreadable or (digest.hex() if digest is not None else None),
            )
        )
    return sorted(listing, key=lambda item: item.path)


def _hash_body(conn: Connection, content_id: int, size: int, fetch: Fetch) -> bytes:
    parts = [
        Extent(
            row.file_offset, row.length, None if row.blob_id is None else bytes(row.blob_id), row.blob_offset
        )
        for row in conn.execute(
            sa.select(extents.c.file_offset, extents.c.length, extents.c.blob_id, extents.c.blob_offset)
            .where(extents.c.content_id == content_id)
            .order_by(extents.c.seq)
        )
    ]
    hasher = blake3.blake3()
    with FileReader(parts, size, fetch) as reader:
        while chunk := reader.read(4 * 1024 * 1024):
            hasher.update(chunk)
    return hasher.digest()
