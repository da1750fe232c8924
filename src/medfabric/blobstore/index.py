"""The blob index in the catalog: which pack holds each blob, and the packs' own rows.

Functions here run inside the caller's transaction, so a file's blob rows commit atomically
with its namespace rows. They never touch a backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.catalog.engine import chunked, insert_ignoring_duplicates
from medfabric.catalog.schema import blobs, packs


@dataclass(frozen=True)
class BlobLocation:
    pack_id: str
    offset: int
    stored_length: int
    length: int
    codec: int


@dataclass(frozen=True)
class PackRow:
    pack_id: str
    volume_id: int
    state: str
    replicas: tuple[int, ...]
    size: int
    blob_count: int
    writer: str | None
    created_at: int
    sealed_at: int | None = None

    def as_values(self) -> dict[str, object]:
        return {
            "id": self.pack_id,
            "volume_id": self.volume_id,
            "state": self.state,
            "replicas": format_replicas(self.replicas),
            "size": self.size,
            "blob_count": self.blob_count,
            "writer": self.writer,
            "created_at": self.created_at,
            "sealed_at": self.sealed_at,
        }


@dataclass
class FlushResult:
    """What a writer made durable, for the caller to record in its own transaction."""

    volume_id: int
    new_packs: list[PackRow] = field(default_factory=list)
    pack_growth: dict[str, tuple[int, int]] = field(default_factory=dict)  # pack -> (end, blobs added)
    blobs: dict[bytes, BlobLocation] = field(default_factory=dict)


def format_replicas(replicas: tuple[int, ...]) -> str:
    return ",".join(str(r) for r in replicas)


def parse_replicas(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part)


def pack_row(row: sa.Row[tuple[object, ...]]) -> PackRow:
    m = row._mapping
    return PackRow(
        str(m["id"]),
        int(m["volume_id"]),
        str(m["state"]),
        parse_replicas(str(m["replicas"])),
        int(m["size"]),
        int(m["blob_count"]),
        m["writer"],
        int(m["created_at"]),
        m["sealed_at"],
    )


def get_pack(conn: Connection, pack_id: str) -> PackRow | None:
    row = conn.execute(sa.select(packs).where(packs.c.id == pack_id)).first()
    return pack_row(row) if row is not None else None


def lookup_blobs(conn: Connection, volume_id: int, blob_ids: list[bytes]) -> dict[bytes, BlobLocation]:
    found: dict[bytes, BlobLocation] = {}
    unique = list(dict.fromkeys(blob_ids))
    for part in chunked(unique):
        rows = conn.execute(
            sa.select(
                blobs.c.blob_id,
                blobs.c.pack_id,
                blobs.c.offset,
                blobs.c.stored_length,
                blobs.c.length,
                blobs.c.codec,
            ).where(blobs.c.volume_id == volume_id, blobs.c.blob_id.in_(part))
        )
        for blob_id, pack_id, offset, stored, length, codec in rows:
            found[bytes(blob_id)] = BlobLocation(pack_id, offset, stored, length, codec)
    return found


def reuse_blobs(conn: Connection, volume_id: int, blob_ids: list[bytes]) -> None:
    """Clear GC's orphan mark on blobs a new file references (see fs.gc for the protocol)."""
    for part in chunked(list(dict.fromkeys(blob_ids))):
        conn.execute(
            blobs.update()
            .where(
                blobs.c.volume_id == volume_id, blobs.c.blob_id.in_(part), blobs.c.orphaned_at.is_not(None)
            )
            .values(orphaned_at=None)
        )


def commit_flush(conn: Connection, result: FlushResult) -> None:
    """Record packs and blobs a writer made durable (idempotent for blobs already indexed)."""
    # Several callers' blobs may share an uploaded pack: whoever commits first records its row.
    insert_ignoring_duplicates(conn, packs, [p.as_values() for p in result.new_packs])
    for pack_id, (end, added) in result.pack_growth.items():
        conn.execute(
            packs.update()
            .where(packs.c.id == pack_id)
            .values(
                size=sa.func.max(packs.c.size, end)
                if conn.dialect.name == "sqlite"
                else sa.func.greatest(packs.c.size, end),
                blob_count=packs.c.blob_count + added,
            )
        )
    insert_ignoring_duplicates(
        conn,
        blobs,
        [
            {
                "volume_id": result.volume_id,
                "blob_id": blob_id,
                "pack_id": loc.pack_id,
                "offset": loc.offset,
                "stored_length": loc.stored_length,
                "length": loc.length,
                "codec": loc.codec,
                "orphaned_at": None,
            }
            for blob_id, loc in result.blobs.items()
        ],
    )
