"""Rebuilding the blob index (``packs`` and ``blobs`` rows) from the pack objects alone.

Every pack names its volume in its header and every record its blob id, codec and lengths
(docs/design/pack-format.md), so scanning the objects gives the whole index back. Replicas of a
pack are byte-identical: the one whose valid records reach furthest is scanned; a torn tail is
ignored. Run it on a quiet fabric (after a catalog restore, or when fsck finds the index broken):
it replaces the index in one transaction and never touches a pack object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa

from medfabric.blobstore.index import format_replicas
from medfabric.blobstore.pack import PACK_HEADER_SIZE, RECORD_HEADER_SIZE, decode_pack_header, scan_records
from medfabric.blobstore.store import BlobStore
from medfabric.catalog.engine import chunked
from medfabric.catalog.schema import blobs, packs, volumes


@dataclass
class RebuildReport:
    objects: int = 0  # pack objects found, all replicas counted
    packs: int = 0  # packs indexed
    blobs: int = 0  # blob rows written
    added: int = 0  # blobs the old index did not know
    moved: int = 0  # blobs the old index placed elsewhere (a pack that is gone or differs)
    dropped: int = 0  # blobs the old index named that no pack holds
    stray_packs: list[str] = field(default_factory=list)  # packs of volumes the catalog lacks
    unreadable: list[str] = field(default_factory=list)  # objects with no valid header

    def as_json(self) -> dict[str, object]:
        return dict(vars(self))


@dataclass
class _Found:
    volume_id: int
    end: int  # where the valid records end
    records: list[tuple[int, bytes, int, int, int]]  # offset, blob id, stored, length, codec
    sizes: dict[int, int] = field(default_factory=dict)  # location -> object size


def _pack_objects(store: BlobStore) -> Iterator[tuple[str, int, str, int]]:
    """(pack id, location, object name, size) for every pack object in every location."""
    for location_id, backend in store.backends.items():
        for info in backend.list("packs/"):
            stem = info.name.rsplit("/", 1)[-1]
            if stem.endswith(".pack") and len(stem) == 37:
                yield stem[:-5], location_id, info.name, info.size


def _reader(data: bytes) -> Callable[[int, int], bytes]:
    def read(offset: int, length: int) -> bytes:
        return data[offset : offset + length]

    return read


def scan_objects(store: BlobStore, report: RebuildReport) -> dict[str, _Found]:
    found: dict[str, _Found] = {}
    for pack_id, location_id, name, size in _pack_objects(store):
        report.objects += 1
        backend = store.backends[location_id]
        try:
            data = backend.read(name, 0, size)
            header = decode_pack_header(data[:PACK_HEADER_SIZE])
        except (OSError, ValueError):
            report.unreadable.append(f"{backend.uri}/{name}")
            continue
        if header.pack_id != pack_id:
            report.unreadable.append(f"{backend.uri}/{name}")
            continue
        records = [
            (
                item.offset,
                item.header.blob_id,
                item.header.stored_length,
                item.header.length,
                item.header.codec,
            )
            for item in scan_records(_reader(data), size)
        ]
        end = records[-1][0] + RECORD_HEADER_SIZE + records[-1][2] if records else PACK_HEADER_SIZE
        known = found.get(pack_id)
        if known is None or end > known.end:
            sizes = known.sizes if known is not None else {}
            known = found[pack_id] = _Found(header.volume_id, end, records, sizes)
        known.sizes[location_id] = size
    return found


def rebuild_index(store: BlobStore, *, now_ms: int) -> RebuildReport:
    """Replace the blob index with what the pack objects hold."""
    report = RebuildReport()
    found = scan_objects(store, report)
    with store.catalog.write() as conn:
        known_volumes = {int(v) for (v,) in conn.execute(sa.select(volumes.c.id))}
        old_rows = {
            str(pack_id): (str(state), int(created))
            for pack_id, state, created in conn.execute(
                sa.select(packs.c.id, packs.c.state, packs.c.created_at)
            )
        }
        old_index = {
            (int(v), bytes(b)): (str(p), int(o))
            for v, b, p, o in conn.execute(
                sa.select(blobs.c.volume_id, blobs.c.blob_id, blobs.c.pack_id, blobs.c.offset)
            )
        }
        pack_rows: list[dict[str, object]] = []
        index: dict[tuple[int, bytes], dict[str, object]] = {}
        for pack_id in sorted(found):  # ids sort by age: a blob in two packs ends up in the newest
            item = found[pack_id]
            if item.volume_id not in known_volumes:
                report.stray_packs.append(pack_id)
                continue
            replicas = tuple(sorted(loc for loc, size in item.sizes.items() if size >= item.end))
            state, created = old_rows.get(pack_id, ("sealed", int(pack_id[:12], 16)))
            pack_rows.append(
                {
                    "id": pack_id,
                    "volume_id": item.volume_id,
                    "state": "sealed" if state in ("open", "deleting") else state,
                    "replicas": format_replicas(replicas),
                    "size": item.end,
                    "blob_count": len(item.records),
                    "writer": None,
                    "created_at": created,
                    "sealed_at": now_ms,
                }
            )
            for offset, blob_id, stored, length, codec in item.records:
                key = (item.volume_id, blob_id)
                chosen = index.get(key)
                if chosen is not None and old_index.get(key) == (chosen["pack_id"], chosen["offset"]):
                    continue  # the old index's choice, when it still holds, stands
                index[key] = {
                    "volume_id": item.volume_id,
                    "blob_id": blob_id,
                    "pack_id": pack_id,
                    "offset": offset,
                    "stored_length": stored,
                    "length": length,
                    "codec": codec,
                    "orphaned_at": None,
                }
        report.packs = len(pack_rows)
        report.blobs = len(index)
        for key, row in index.items():
            previous = old_index.get(key)
            if previous is None:
                report.added += 1
            elif previous != (row["pack_id"], row["offset"]):
                report.moved += 1
        report.dropped = sum(1 for key in old_index if key not in index)
        conn.execute(blobs.delete())
        conn.execute(packs.delete())
        for part in chunked(pack_rows, 1000):
            conn.execute(packs.insert(), part)
        for rows in chunked(list(index.values()), 1000):
            conn.execute(blobs.insert(), rows)
    for pack_id in found:
        store.forget_pack(pack_id)
    return report
