"""Encryption at rest: per-volume keys wrapped by the master key, and re-encrypting a volume.

A volume created with ``-dare true`` encrypts everything from the start. ``volume encrypt``
turns it on for a volume that holds data: new writes are encrypted at once; the existing blobs
are rewritten encrypted (reads keep working throughout: every blob says how it is encoded), then
every pack that held plaintext is deleted or compacted, so no plaintext byte stays in a backend.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.blobstore import codec as codecs
from medfabric.blobstore.index import BlobLocation, commit_flush
from medfabric.blobstore.store import PackWriter
from medfabric.catalog.schema import blobs, contents, extents, packs, volume_keys
from medfabric.errors import InvalidInput
from medfabric.fs import gc
from medfabric.fs import volumes as volume_rows
from medfabric.fs.model import Volume
from medfabric.security.keys import KEY_SIZE, Kms, LocalKms
from medfabric.service.access import require_cluster, require_volume

if TYPE_CHECKING:
    from medfabric.service.fabric import Engines, Fabric

BATCH = 256
Progress = Callable[[int, int], None]  # (blobs done, blobs in total)


@dataclass(frozen=True)
class VolumeKeys:
    data_key: bytes
    id_key: bytes


def _context(volume_id: int, purpose: str) -> bytes:
    return f"medfabric volume {volume_id} {purpose}".encode()


def kms_of(engines: Engines) -> Kms:
    if engines.kms is None:
        engines.kms = LocalKms(engines.config.home / "keys")
    return engines.kms


def create_keys(conn: Connection, kms: Kms, volume_id: int, now_ms: int) -> None:
    if conn.execute(sa.select(volume_keys.c.volume_id).where(volume_keys.c.volume_id == volume_id)).first():
        return
    key_id, wrapped_data = kms.wrap(os.urandom(KEY_SIZE), context=_context(volume_id, "data"))
    _key_id, wrapped_ids = kms.wrap(os.urandom(KEY_SIZE), context=_context(volume_id, "ids"))
    conn.execute(
        volume_keys.insert().values(
            volume_id=volume_id,
            generation=1,
            kms_key_id=key_id,
            wrapped_data_key=wrapped_data,
            wrapped_id_key=wrapped_ids,
            created_at=now_ms,
        )
    )


def load_keys(engines: Engines, volume_id: int) -> VolumeKeys:
    """A volume's keys, unwrapped once per process."""
    cache = engines.volume_keys
    found = cache.get(volume_id)
    if found is not None:
        return found
    with engines.catalog.read() as conn:
        row = conn.execute(
            sa.select(volume_keys)
            .where(volume_keys.c.volume_id == volume_id)
            .order_by(volume_keys.c.generation.desc())
            .limit(1)
        ).first()
    if row is None:
        raise InvalidInput(f"volume {volume_id} is marked encrypted but has no keys")
    kms = kms_of(engines)
    keys = VolumeKeys(
        kms.unwrap(row.kms_key_id, row.wrapped_data_key, context=_context(volume_id, "data")),
        kms.unwrap(row.kms_key_id, row.wrapped_id_key, context=_context(volume_id, "ids")),
    )
    cache[volume_id] = keys
    return keys


def codec_policy(engines: Engines, volume: Volume) -> codecs.CodecPolicy:
    if volume.encryption == "off":
        return codecs.CodecPolicy(compression=volume.compression)
    keys = load_keys(engines, volume.id)
    return codecs.CodecPolicy(compression=volume.compression, data_key=keys.data_key, id_key=keys.id_key)


class EncryptionService:
    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric

    def enable(self, volume: str, *, progress: Progress | None = None, reencrypt: bool = True) -> Volume:
        """Encrypt a volume from now on and (unless ``reencrypt`` is False) rewrite what it holds."""
        fabric = self.fabric
        with fabric.access("volume encrypt", volume=volume):
            with fabric.catalog.write() as conn:
                found = volume_rows.get_volume(conn, volume)
                require_volume(fabric.principal, found, "m", "encrypt")
                if found.encryption == "off":
                    create_keys(conn, kms_of(fabric.engines), found.id, fabric.clock.now_ms())
                    volume_rows.update_volume(conn, found.id, encryption="encrypting")
            if reencrypt:
                self.reencrypt(volume, progress=progress)
            return self.status(volume)

    def status(self, volume: str) -> Volume:
        with self.fabric.catalog.read() as conn:
            return volume_rows.get_volume(conn, volume)

    def pending(self, volume: str) -> tuple[int, int]:
        """(blobs still in plaintext, blobs in all) of a volume."""
        with self.fabric.catalog.read() as conn:
            found = volume_rows.get_volume(conn, volume)
            total = conn.execute(sa.select(sa.func.count()).where(blobs.c.volume_id == found.id)).scalar_one()
            plain = conn.execute(
                sa.select(sa.func.count()).where(
                    blobs.c.volume_id == found.id, blobs.c.codec.op("&")(codecs.ENCRYPTED) == 0
                )
            ).scalar_one()
        return int(plain), int(total)

    def reencrypt(self, volume: str, *, progress: Progress | None = None) -> int:
        """Rewrite a volume's plaintext blobs encrypted; resumable; returns how many it rewrote."""
        fabric = self.fabric
        store = fabric.store
        with fabric.catalog.read() as conn:
            found = volume_rows.get_volume(conn, volume)
        if found.encryption == "off":
            raise InvalidInput(f"volume {volume} is not being encrypted (run volume encrypt first)")
        policy = codec_policy(fabric.engines, found)
        started = fabric.clock.now_ms()
        # New records must not land in a pack that also holds plaintext: close the open ones.
        store.writer(found.id, fabric.placement(found)).release()
        with fabric.catalog.write() as conn:
            conn.execute(
                packs.update()
                .where(packs.c.volume_id == found.id, packs.c.state == "open")
                .values(state="sealed", sealed_at=started)
            )
        done = 0
        plain_total, _ = self.pending(volume)
        writer = PackWriter(store, found.id, fabric.placement(found))
        try:
            while True:
                with fabric.catalog.read() as conn:
                    batch = conn.execute(
                        sa.select(
                            blobs.c.blob_id,
                            blobs.c.pack_id,
                            blobs.c.offset,
                            blobs.c.stored_length,
                            blobs.c.length,
                            blobs.c.codec,
                        )
                        .where(blobs.c.volume_id == found.id, blobs.c.codec.op("&")(codecs.ENCRYPTED) == 0)
                        .limit(BATCH)
                    ).all()
                if not batch:
                    break
                renamed: dict[bytes, bytes] = {}
                for blob_id, pack_id, offset, stored, length, codec in batch:
                    location = BlobLocation(str(pack_id), int(offset), int(stored), int(length), int(codec))
                    plaintext = bytes(store.read_blob(found.id, bytes(blob_id), location, policy))
                    new_id = codecs.compute_blob_id(policy, plaintext)
                    new_codec, payload = codecs.encode(policy, new_id, plaintext)
                    writer.append(new_id, new_codec, len(plaintext), payload)
                    renamed[bytes(blob_id)] = new_id
                flushed = writer.flush()
                with fabric.catalog.write() as conn:
                    commit_flush(conn, flushed)
                    volume_contents = sa.select(contents.c.id).where(contents.c.volume_id == found.id)
                    for old, new in renamed.items():
                        conn.execute(
                            extents.update()
                            .where(extents.c.blob_id == old, extents.c.content_id.in_(volume_contents))
                            .values(blob_id=new)
                        )
                        conn.execute(
                            blobs.delete().where(blobs.c.volume_id == found.id, blobs.c.blob_id == old)
                        )
                done += len(batch)
                if progress is not None:
                    progress(done, plain_total)
        finally:
            writer.release()
        self._drop_plaintext_packs(found, started)
        with fabric.catalog.write() as conn:
            volume_rows.update_volume(conn, found.id, encryption="on")
        return done

    def _drop_plaintext_packs(self, volume: Volume, started: int) -> None:
        """Packs from before the rewrite: delete the empty ones, compact the rest (encrypted records only)."""
        fabric = self.fabric
        with fabric.catalog.write() as conn:
            holds = sa.exists().where(blobs.c.pack_id == packs.c.id)
            conn.execute(
                packs.update()
                .where(packs.c.volume_id == volume.id, packs.c.created_at <= started, ~holds)
                .values(state="deleting")
            )
            mixed = (
                conn.execute(
                    sa.select(packs.c.id).where(
                        packs.c.volume_id == volume.id,
                        packs.c.created_at <= started,
                        packs.c.state != "deleting",
                    )
                )
                .scalars()
                .all()
            )
        for pack_id in mixed:
            gc.rewrite_pack(fabric.store, str(pack_id), volume.id, fabric.placement(volume))
        gc.delete_marked_packs(fabric.store, gc.GcReport())

    def rotate_master_key(self) -> str:
        """A new master key; every volume key is re-wrapped with it (the data is not rewritten)."""
        fabric = self.fabric
        with fabric.access("key rotate"):
            require_cluster(fabric.principal, fabric.cluster_acl(), "fc", "rotate keys")
            kms = kms_of(fabric.engines)
            with fabric.catalog.read() as conn:
                rows = conn.execute(sa.select(volume_keys)).all()
            unwrapped = [
                (
                    row,
                    kms.unwrap(row.kms_key_id, row.wrapped_data_key, context=_context(row.volume_id, "data")),
                    kms.unwrap(row.kms_key_id, row.wrapped_id_key, context=_context(row.volume_id, "ids")),
                )
                for row in rows
            ]
            if not isinstance(kms, LocalKms):
                raise InvalidInput("this KMS rotates its keys itself")
            new_id = kms.rotate()
            with fabric.catalog.write() as conn:
                for row, data_key, id_key in unwrapped:
                    key_id, wrapped_data = kms.wrap(data_key, context=_context(row.volume_id, "data"))
                    _same, wrapped_ids = kms.wrap(id_key, context=_context(row.volume_id, "ids"))
                    conn.execute(
                        volume_keys.update()
                        .where(
                            volume_keys.c.volume_id == row.volume_id,
                            volume_keys.c.generation == row.generation,
                        )
                        .values(kms_key_id=key_id, wrapped_data_key=wrapped_data, wrapped_id_key=wrapped_ids)
                    )
            return new_id
