"""Consistency of catalog, blob index and packs: what `medfabric fsck` checks.

Read-only: fsck reports, it never repairs (``gc`` reclaims, ``scrub -repair`` rewrites replicas).
Each problem names the object it concerns; errors make the fabric inconsistent, warnings are
leftovers a GC run reclaims.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.blobstore.index import parse_replicas
from medfabric.blobstore.pack import (
    PACK_HEADER_SIZE,
    RECORD_HEADER_SIZE,
    decode_pack_header,
    pack_object_name,
)
from medfabric.blobstore.store import BlobStore
from medfabric.catalog.schema import blobs, contents, entries, extents, packs, volumes
from medfabric.fs.model import KIND_DIR, KIND_FILE
from medfabric.fs.namespace import ROOT_PARENT, load_mounts, mount_components, walk


@dataclass(frozen=True)
class Problem:
    severity: str  # error | warning
    kind: str
    subject: str
    detail: str

    def as_json(self) -> dict[str, str]:
        return {"severity": self.severity, "kind": self.kind, "subject": self.subject, "detail": self.detail}


def check(store: BlobStore, *, limit: int = 1000) -> list[Problem]:
    problems: list[Problem] = []
    with store.catalog.read() as conn:
        problems += _check_volumes(conn)
        problems += _check_namespace(conn, limit)
        problems += _check_blob_index(conn, limit)
        pack_rows = conn.execute(
            sa.select(packs.c.id, packs.c.volume_id, packs.c.state, packs.c.replicas, packs.c.size)
        ).all()
    problems += _check_pack_objects(store, pack_rows)
    return problems


def _check_volumes(conn: Connection) -> list[Problem]:
    problems: list[Problem] = []
    live = entries.c.died.is_(None)
    sums = {
        int(volume_id): (int(files), int(dirs), int(size))
        for volume_id, files, dirs, size in conn.execute(
            sa.select(
                entries.c.volume_id,
                sa.func.sum(sa.case((entries.c.kind != KIND_DIR, 1), else_=0)),
                sa.func.sum(
                    sa.case(
                        (sa.and_(entries.c.kind == KIND_DIR, entries.c.parent_ino != ROOT_PARENT), 1), else_=0
                    )
                ),
                sa.func.sum(sa.case((entries.c.kind != KIND_DIR, entries.c.size), else_=0)),
            )
            .where(live)
            .group_by(entries.c.volume_id)
        )
    }
    mounts = load_mounts(conn)
    for volume in mounts.volumes.values():
        subject = f"volume {volume.name}"
        try:
            root = walk(conn, volume, ())[0]
            if root.kind != KIND_DIR:
                problems.append(Problem("error", "root", subject, "root entry is not a directory"))
        except Exception as error:  # noqa: BLE001 - any failure to find the root is the finding
            problems.append(Problem("error", "root", subject, f"no root directory: {error}"))
        files, dirs, size = sums.get(volume.id, (0, 0, 0))
        if (files, dirs, size) != (volume.file_count, volume.dir_count, volume.logical_bytes):
            problems.append(
                Problem(
                    "error",
                    "counters",
                    subject,
                    f"catalog says {volume.file_count} files, {volume.dir_count} directories, "
                    f"{volume.logical_bytes} bytes; the namespace holds {files}, {dirs}, {size}",
                )
            )
        if volume.mounted and volume.mount_path not in (None, "/"):
            components = mount_components(volume.mount_path or "/")
            enclosing, inside = mounts.resolve(components[:-1])
            try:
                walk(conn, enclosing, inside)
            except Exception as error:  # noqa: BLE001
                problems.append(
                    Problem(
                        "error",
                        "mount",
                        subject,
                        f"the directory holding mount point {volume.mount_path} is missing: {error}",
                    )
                )
    return problems


def _check_namespace(conn: Connection, limit: int) -> list[Problem]:
    problems: list[Problem] = []
    parent = entries.alias("parent")
    orphans = conn.execute(
        sa.select(entries.c.volume_id, entries.c.ino, entries.c.name)
        .where(
            entries.c.died.is_(None),
            entries.c.parent_ino != ROOT_PARENT,
            ~sa.exists().where(
                parent.c.volume_id == entries.c.volume_id,
                parent.c.ino == entries.c.parent_ino,
                parent.c.died.is_(None),
                parent.c.kind == KIND_DIR,
            ),
        )
        .limit(limit)
    ).all()
    problems += [
        Problem("error", "orphan-entry", f"volume {v} inode {ino}", f"{name!r} has no live parent directory")
        for v, ino, name in orphans
    ]
    missing_content = conn.execute(
        sa.select(entries.c.volume_id, entries.c.ino, entries.c.name)
        .where(
            entries.c.kind == KIND_FILE,
            sa.or_(entries.c.content_id.is_(None), ~sa.exists().where(contents.c.id == entries.c.content_id)),
        )
        .limit(limit)
    ).all()
    problems += [
        Problem("error", "missing-content", f"volume {v} inode {ino}", f"{name!r} has no content row")
        for v, ino, name in missing_content
    ]
    missing_blobs = conn.execute(
        sa.select(contents.c.volume_id, extents.c.content_id, extents.c.blob_id)
        .join(contents, contents.c.id == extents.c.content_id)
        .where(
            extents.c.blob_id.is_not(None),
            ~sa.exists().where(
                blobs.c.volume_id == contents.c.volume_id, blobs.c.blob_id == extents.c.blob_id
            ),
        )
        .limit(limit)
    ).all()
    problems += [
        Problem(
            "error",
            "missing-blob",
            f"volume {v} content {c}",
            f"blob {bytes(b).hex()[:16]}… is not in the blob index",
        )
        for v, c, b in missing_blobs
    ]
    return problems


def _check_blob_index(conn: Connection, limit: int) -> list[Problem]:
    problems: list[Problem] = []
    bad = conn.execute(
        sa.select(
            blobs.c.volume_id,
            blobs.c.blob_id,
            blobs.c.pack_id,
            packs.c.state,
            blobs.c.offset + RECORD_HEADER_SIZE + blobs.c.stored_length,
            packs.c.size,
        )
        .join(packs, packs.c.id == blobs.c.pack_id, isouter=True)
        .where(
            sa.or_(
                packs.c.id.is_(None),
                packs.c.state == "deleting",
                blobs.c.offset + RECORD_HEADER_SIZE + blobs.c.stored_length > packs.c.size,
                blobs.c.offset < PACK_HEADER_SIZE,
            )
        )
        .limit(limit)
    ).all()
    for volume_id, blob_id, pack_id, state, end, size in bad:
        subject = f"volume {volume_id} blob {bytes(blob_id).hex()[:16]}…"
        if state is None:
            problems.append(
                Problem("error", "missing-pack", subject, f"pack {pack_id} is not in the catalog")
            )
        elif state == "deleting":
            problems.append(Problem("error", "deleted-pack", subject, f"pack {pack_id} is being deleted"))
        else:
            problems.append(
                Problem(
                    "error",
                    "blob-range",
                    subject,
                    f"ends at {end}, past the committed size {size} of pack {pack_id}",
                )
            )
    stale = conn.execute(
        sa.select(sa.func.count()).select_from(blobs).where(blobs.c.volume_id.not_in(sa.select(volumes.c.id)))
    ).scalar_one()
    if stale:
        problems.append(Problem("error", "stale-blobs", "blob index", f"{stale} blobs belong to no volume"))
    return problems


def _check_pack_objects(store: BlobStore, pack_rows: Sequence[Any]) -> list[Problem]:
    problems: list[Problem] = []
    for pack_id, volume_id, state, replicas, size in pack_rows:
        if state == "deleting":
            problems.append(Problem("warning", "pack-deleting", f"pack {pack_id}", "awaiting deletion by gc"))
            continue
        locations = parse_replicas(str(replicas))
        if not locations:
            problems.append(Problem("error", "pack-replicas", f"pack {pack_id}", "has no replica"))
        name = pack_object_name(int(str(volume_id)), str(pack_id))
        for location_id in locations:
            backend = store.backends.get(location_id)
            if backend is None:
                problems.append(
                    Problem(
                        "warning",
                        "pack-location",
                        f"pack {pack_id}",
                        f"location {location_id} is not attached to this process",
                    )
                )
                continue
            info = backend.stat(name)
            if info is None and state == "open" and int(str(size)) <= PACK_HEADER_SIZE:
                # Nothing committed in it: a writer claimed it and stopped (killed) before creating
                # its object, or is about to. Nothing is lost; the next writer to claim it creates it.
                continue
            if info is None:
                problems.append(
                    Problem("error", "pack-missing", f"pack {pack_id}", f"no object at {backend.uri}")
                )
            elif info.size < int(str(size)):
                problems.append(
                    Problem(
                        "error",
                        "pack-short",
                        f"pack {pack_id}",
                        f"{backend.uri} holds {info.size} of {size} committed bytes",
                    )
                )
            else:
                try:
                    header = decode_pack_header(backend.read(name, 0, PACK_HEADER_SIZE))
                    if header.pack_id != pack_id:
                        problems.append(
                            Problem(
                                "error",
                                "pack-header",
                                f"pack {pack_id}",
                                f"{backend.uri} holds pack {header.pack_id}",
                            )
                        )
                except (OSError, ValueError) as error:
                    problems.append(
                        Problem("error", "pack-header", f"pack {pack_id}", f"{backend.uri}: {error}")
                    )
    return problems
