"""Garbage collection: mark and sweep from the catalog, with a grace period, then compaction.

Reachability is computed, never counted: a blob is live while any extent of any content of
any entry version that the live volume or a snapshot can see names it. A blob found
unreachable is only marked; it is deleted by a later run, after the grace period, if it is
still unreachable (a writer that reuses a marked blob clears the mark in its transaction).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import sqlalchemy as sa

from medfabric.blobstore.index import FlushResult, commit_flush, parse_replicas
from medfabric.blobstore.pack import PACK_HEADER_SIZE, RECORD_HEADER_SIZE, check_record, pack_object_name
from medfabric.blobstore.store import BlobStore, PackWriter, Placement
from medfabric.catalog.schema import blobs, contents, entries, extents, packs, snapshots, volumes
from medfabric.errors import IntegrityError


@dataclass
class GcReport:
    entries_purged: int = 0
    contents_purged: int = 0
    blobs_marked: int = 0
    blobs_deleted: int = 0
    packs_compacted: int = 0
    packs_deleted: int = 0
    objects_deleted: int = 0
    bytes_reclaimed: int = 0

    def as_json(self) -> dict[str, int]:
        return dict(vars(self))


def _unreachable_entries() -> sa.ColumnElement[bool]:
    seen_by_snapshot = sa.exists().where(
        snapshots.c.volume_id == entries.c.volume_id,
        snapshots.c.version >= entries.c.born,
        snapshots.c.version < entries.c.died,
    )
    return sa.and_(entries.c.died.is_not(None), ~seen_by_snapshot)


def collect(store: BlobStore, *, now_ms: int, grace_ms: int, live_fraction: float = 0.5) -> GcReport:
    report = GcReport()
    catalog = store.catalog
    with catalog.write() as conn:
        report.entries_purged = conn.execute(entries.delete().where(_unreachable_entries())).rowcount
        referenced = sa.select(entries.c.content_id).where(entries.c.content_id.is_not(None))
        conn.execute(extents.delete().where(extents.c.content_id.not_in(referenced)))
        report.contents_purged = conn.execute(
            contents.delete().where(contents.c.id.not_in(referenced))
        ).rowcount
        in_use = sa.exists().where(
            extents.c.blob_id == blobs.c.blob_id,
            contents.c.id == extents.c.content_id,
            contents.c.volume_id == blobs.c.volume_id,
        )
        report.blobs_marked = conn.execute(
            blobs.update().where(blobs.c.orphaned_at.is_(None), ~in_use).values(orphaned_at=now_ms)
        ).rowcount
        conn.execute(blobs.update().where(blobs.c.orphaned_at.is_not(None), in_use).values(orphaned_at=None))
        report.blobs_deleted = conn.execute(
            blobs.delete().where(
                blobs.c.orphaned_at.is_not(None), blobs.c.orphaned_at <= now_ms - grace_ms, ~in_use
            )
        ).rowcount
        # Sealed packs that hold nothing any more, old enough that no writer can still be recording into them.
        holds_blobs = sa.exists().where(blobs.c.pack_id == packs.c.id)
        conn.execute(
            packs.update()
            .where(packs.c.state == "sealed", ~holds_blobs, packs.c.created_at <= now_ms - grace_ms)
            .values(state="deleting")
        )
        existing_volumes = sa.select(volumes.c.id)
        conn.execute(
            packs.update()
            .where(packs.c.volume_id.not_in(existing_volumes))
            .values(state="deleting", writer=None)
        )
    report.packs_compacted = _compact(
        store, now_ms=now_ms, grace_ms=grace_ms, live_fraction=live_fraction, report=report
    )
    delete_marked_packs(store, report)
    _delete_stray_objects(store, now_ms=now_ms, grace_ms=grace_ms, report=report)
    return report


def delete_marked_packs(store: BlobStore, report: GcReport) -> None:
    with store.catalog.read() as conn:
        doomed = conn.execute(
            sa.select(packs.c.id, packs.c.volume_id, packs.c.replicas, packs.c.size).where(
                packs.c.state == "deleting"
            )
        ).all()
    for pack_id, volume_id, replicas, size in doomed:
        for location_id in parse_replicas(str(replicas)):
            backend = store.backends.get(location_id)
            if backend is not None:
                backend.delete(pack_object_name(int(volume_id), str(pack_id)))
        store.forget_pack(str(pack_id))
        with store.catalog.write() as conn:
            conn.execute(packs.delete().where(packs.c.id == pack_id, packs.c.state == "deleting"))
        report.packs_deleted += 1
        report.bytes_reclaimed += int(size) * max(1, len(parse_replicas(str(replicas))))


def _delete_stray_objects(store: BlobStore, *, now_ms: int, grace_ms: int, report: GcReport) -> None:
    """Pack objects with no catalog row (a writer died between storing and recording them)."""
    with store.catalog.read() as conn:
        known = {str(pack_id) for (pack_id,) in conn.execute(sa.select(packs.c.id))}
    for backend in store.backends.values():
        for info in list(backend.list("packs/")):
            pack_id = info.name.rsplit("/", 1)[-1].removesuffix(".pack")
            if pack_id in known or len(pack_id) != 32:
                continue
            with contextlib.suppress(ValueError):
                created = int(pack_id[:12], 16)
                if created <= now_ms - grace_ms:
                    backend.delete(info.name)
                    report.objects_deleted += 1
                    report.bytes_reclaimed += info.size


def _compact(store: BlobStore, *, now_ms: int, grace_ms: int, live_fraction: float, report: GcReport) -> int:
    """Rewrite sealed packs whose live bytes fell below ``live_fraction`` of their size."""
    with store.catalog.read() as conn:
        live = (
            sa.select(blobs.c.pack_id, sa.func.sum(blobs.c.stored_length + RECORD_HEADER_SIZE).label("live"))
            .group_by(blobs.c.pack_id)
            .subquery()
        )
        rows = conn.execute(
            sa.select(
                packs.c.id,
                packs.c.volume_id,
                packs.c.size,
                live.c.live,
                volumes.c.replication,
                volumes.c.min_replication,
            )
            .join(live, live.c.pack_id == packs.c.id)
            .join(volumes, volumes.c.id == packs.c.volume_id)
            .where(packs.c.state == "sealed", packs.c.created_at <= now_ms - grace_ms)
        ).all()
    compacted = 0
    for pack_id, volume_id, size, live_bytes, replication, min_replication in rows:
        if (int(live_bytes) + PACK_HEADER_SIZE) >= live_fraction * int(size):
            continue
        rewrite_pack(store, str(pack_id), int(volume_id), Placement(int(replication), int(min_replication)))
        compacted += 1
        report.bytes_reclaimed += int(size) - int(live_bytes)
    return compacted


def rewrite_pack(store: BlobStore, pack_id: str, volume_id: int, placement: Placement) -> None:
    with store.catalog.read() as conn:
        live = conn.execute(
            sa.select(
                blobs.c.blob_id, blobs.c.offset, blobs.c.stored_length, blobs.c.length, blobs.c.codec
            ).where(blobs.c.pack_id == pack_id)
        ).all()
    # A writer of its own: the shared one may hold other callers' blobs awaiting their flush.
    writer = PackWriter(store, volume_id, placement)
    try:
        moved: dict[bytes, int] = {}
        for blob_id, offset, stored, length, codec in live:
            record = _read_good_record(store, volume_id, pack_id, int(offset), int(stored), bytes(blob_id))
            _header, payload = check_record(record, bytes(blob_id))
            writer.append(bytes(blob_id), int(codec), int(length), payload)
            moved[bytes(blob_id)] = int(offset)
        result: FlushResult = writer.flush()
        with store.catalog.write() as conn:
            commit_flush(conn, FlushResult(volume_id, result.new_packs, result.pack_growth, {}))
            for blob_id, location in result.blobs.items():
                conn.execute(
                    blobs.update()
                    .where(
                        blobs.c.volume_id == volume_id,
                        blobs.c.blob_id == blob_id,
                        blobs.c.pack_id == pack_id,
                        blobs.c.offset == moved[blob_id],
                    )
                    .values(pack_id=location.pack_id, offset=location.offset)
                )
            still_used = conn.execute(
                sa.select(sa.func.count()).where(blobs.c.pack_id == pack_id)
            ).scalar_one()
            if still_used == 0:
                conn.execute(packs.update().where(packs.c.id == pack_id).values(state="deleting"))
    finally:
        writer.release()


def _read_good_record(
    store: BlobStore, volume_id: int, pack_id: str, offset: int, stored: int, blob_id: bytes
) -> bytes:
    errors: list[str] = []
    for location_id in store.replicas_of(pack_id, refresh=True):
        try:
            record = store.read_record(location_id, volume_id, pack_id, offset, stored)
            check_record(record, blob_id)
            return record
        except (OSError, ValueError) as error:
            errors.append(str(error))
    raise IntegrityError(
        f"compaction of pack {pack_id}: no good copy of blob {blob_id.hex()[:16]}…: " + "; ".join(errors)
    )
