"""This fabric's end of the mirror protocol: what a ``Transport`` reaching it calls.

Each method is one service operation, checked and audited like any other (a future HTTPS server
exposes exactly these). As a source it takes snapshots and hands out changed rows and stored
blobs; as a mirror it verifies and stores blobs, stages rows, and commits them atomically.
It never writes a mirror volume's namespace except in ``commit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import blake3
import sqlalchemy as sa

from medfabric.blobstore import codec as codecs
from medfabric.blobstore.index import BlobLocation, commit_flush, lookup_blobs
from medfabric.catalog.schema import mirrors
from medfabric.errors import Conflict, InvalidInput, NotFound
from medfabric.fs import snapshots as snapshot_rows
from medfabric.fs import volumes as volume_rows
from medfabric.fs.model import Volume
from medfabric.fs.namespace import load_mounts
from medfabric.fs.paths import split_path
from medfabric.replication import apply, changes
from medfabric.replication import mirror_state as state
from medfabric.replication.transport import (
    ChangePage,
    CommitResult,
    ManifestEntry,
    MirrorStatus,
    SourceSpec,
    SyncTicket,
    TransferBlob,
    VolumeRef,
)
from medfabric.service.access import require_admin

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from medfabric.service.fabric import Fabric


class MirrorPeer:
    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric

    def blob_scheme(self, volume: Volume) -> str:
        """How the volume names its blobs; two volumes can exchange blob ids only if these match."""
        policy = self.fabric.codec_policy(volume)
        if policy.id_key is None:
            return "blake3"
        return "blake3-keyed:" + blake3.blake3(policy.id_key).hexdigest()[:16]

    def _volume(self, conn: Connection, volume: str) -> Volume:
        if not volume.startswith("/"):
            return volume_rows.get_volume(conn, volume)
        mounted = load_mounts(conn).by_path.get(split_path(volume))
        if mounted is None:
            raise NotFound(f"no volume is mounted at {volume} in fabric {self.fabric.name}")
        return mounted

    # -- as a source --

    def describe_volume(self, volume: str) -> VolumeRef:
        fabric = self.fabric
        with fabric.access("mirror describe", volume=volume), fabric.catalog.read() as conn:
            require_admin(fabric.principal, "mirror volumes")
            found = self._volume(conn, volume)
            return VolumeRef(
                fabric.config.fabric_id,
                fabric.name,
                found.id,
                found.name,
                found.type,
                found.mount_path,
                found.version,
                found.next_ino,
                found.created_at,
                self.blob_scheme(found),
            )

    def sync_snapshot(self, volume: str, name: str, *, create: bool) -> int | None:
        fabric = self.fabric
        with fabric.access("mirror snapshot", volume=volume):
            require_admin(fabric.principal, "mirror volumes")
            with fabric.catalog.read() as conn:
                found = snapshot_rows.find_snapshot(conn, volume_rows.get_volume(conn, volume).id, name)
            if found is not None or not create:
                return found.version if found is not None else None
            try:
                return fabric.snapshots.create(volume, name).version
            except Conflict:
                return fabric.snapshots.get(volume, name).version  # another driver took it first

    def drop_snapshot(self, volume: str, name: str) -> None:
        try:
            self.fabric.snapshots.remove(volume, name)
        except NotFound:
            pass

    def changes(self, volume: str, since: int, upto: int, after: int, limit: int) -> ChangePage:
        fabric = self.fabric
        with fabric.access("mirror read", volume=volume), fabric.catalog.read() as conn:
            require_admin(fabric.principal, "mirror volumes")
            found = volume_rows.get_volume(conn, volume)
            if not 0 <= since <= upto < found.version or limit < 1:
                raise InvalidInput(
                    f"bad range ({since}, {upto}] of volume {volume} (open version {found.version})"
                )
            return changes.change_page(conn, found.id, since, upto, after, min(limit, 10_000))

    def read_blobs(self, volume: str, blob_ids: Sequence[bytes]) -> list[TransferBlob]:
        fabric = self.fabric
        with fabric.access("mirror read", volume=volume), fabric.catalog.read() as conn:
            require_admin(fabric.principal, "mirror volumes")
            found = volume_rows.get_volume(conn, volume)
            return changes.read_blobs(conn, fabric.store, found.id, blob_ids)

    def manifest(self, volume: str, snapshot: str | None, *, rehash: bool) -> list[ManifestEntry]:
        fabric = self.fabric
        with fabric.access("mirror verify", volume=volume), fabric.catalog.read() as conn:
            require_admin(fabric.principal, "verify mirrors")
            found = volume_rows.get_volume(conn, volume)
            version = None
            if snapshot is not None:
                taken = snapshot_rows.find_snapshot(conn, found.id, snapshot)
                if taken is None:
                    raise NotFound(f"volume {volume} has no snapshot {snapshot!r}")
                version = taken.version
            policy = fabric.codec_policy(found)
            located: dict[bytes, BlobLocation] = {}

            def fetch(blob_id: bytes) -> codecs.Buffer:
                if blob_id not in located:
                    located.update(lookup_blobs(conn, found.id, [blob_id]))
                if blob_id not in located:
                    raise NotFound(f"blob {blob_id.hex()[:16]}… of volume {volume} is not in the blob index")
                return fabric.store.read_blob(found.id, blob_id, located[blob_id], policy)

            return changes.manifest(conn, found.id, version, fetch, rehash=rehash)

    def mirrors_of(self, fabric_id: str, volume_id: int) -> list[str]:
        fabric = self.fabric
        with fabric.access("mirror list"), fabric.catalog.read() as conn:
            require_admin(fabric.principal, "list mirrors")
            ids = state.mirrors_of(conn, fabric_id, volume_id)
            return [volume.name for volume in volume_rows.list_volumes(conn) if volume.id in ids]

    # -- as a mirror --

    def create_mirror(self, name: str, path: str | None, source: SourceSpec) -> VolumeRef:
        self.fabric.volumes.create(name, path, volume_type="mirror", source=source)
        return self.describe_volume(name)

    def mirror_status(self, volume: str) -> MirrorStatus:
        fabric = self.fabric
        with fabric.access("mirror status", volume=volume), fabric.catalog.read() as conn:
            found = volume_rows.get_volume(conn, volume)
            return _status(found, state.require_mirror(conn, found))

    def stop_sync(self, volume: str) -> MirrorStatus:
        fabric = self.fabric
        with fabric.access("mirror stop", volume=volume), fabric.catalog.write() as conn:
            require_admin(fabric.principal, "stop mirror syncs")
            found = volume_rows.get_volume(conn, volume)
            row = state.require_mirror(conn, found)
            if state.owner_is_gone(row.owner):
                state.update_mirror(conn, found.id, owner=None, state="stopped", stop_requested=False)
            else:
                state.update_mirror(conn, found.id, stop_requested=True)
            return _status(found, state.require_mirror(conn, found))

    def begin_sync(self, volume: str, owner: str, *, full: bool) -> SyncTicket:
        fabric = self.fabric
        with fabric.access("mirror sync", volume=volume) as note, fabric.catalog.write() as conn:
            require_admin(fabric.principal, "sync mirrors")
            found = self._mirror_volume(conn, volume)
            now = fabric.clock.now_ms()
            stamp = datetime.fromtimestamp(now / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            name = f"mirror.{fabric.name}.{found.name}.{stamp}"[:255]
            ticket = state.claim(
                conn, found, state.require_mirror(conn, found), owner, full=full, snapshot=name, now_ms=now
            )
            note.detail = f"{'full ' if ticket.full else ''}sync of {ticket.snapshot}"
            return ticket

    def _mirror_volume(self, conn: Connection, volume: str) -> Volume:
        found = volume_rows.get_volume(conn, volume)
        if found.type != "mirror":
            raise Conflict(f"volume {volume} is not a mirror volume (it was promoted, or never was one)")
        return found

    def missing_blobs(self, volume: str, blob_ids: Sequence[bytes]) -> set[bytes]:
        fabric = self.fabric
        with fabric.access("mirror compare", volume=volume), fabric.catalog.read() as conn:
            require_admin(fabric.principal, "sync mirrors")
            found = volume_rows.get_volume(conn, volume)
            present = lookup_blobs(conn, found.id, list(blob_ids))
            return {blob_id for blob_id in blob_ids if blob_id not in present}

    def put_blobs(self, ticket: SyncTicket, blobs: Sequence[TransferBlob]) -> None:
        """Verify each blob against its id (never trust bytes off the wire), store, index."""
        fabric = self.fabric
        with fabric.access("mirror write", volume=ticket.volume):
            require_admin(fabric.principal, "sync mirrors")
            with fabric.catalog.read() as conn:
                found = self._mirror_volume(conn, ticket.volume)
            policy = fabric.codec_policy(found)
            list(
                fabric.pool.map(
                    lambda blob: codecs.decode(policy, blob.blob_id, blob.codec, blob.payload, blob.length),
                    blobs,
                )
            )
            writer = fabric.store.writer(found.id, fabric.placement(found))
            owner = writer.new_owner()
            for blob in blobs:
                writer.append(blob.blob_id, blob.codec, blob.length, blob.payload, owner=owner)
            flushed = writer.flush(owner)
            with fabric.catalog.write() as conn:
                apply.check_ticket(state.require_mirror(conn, found), ticket)
                commit_flush(conn, flushed)
                state.update_mirror(
                    conn,
                    found.id,
                    blobs_sent=mirrors.c.blobs_sent + len(blobs),
                    bytes_sent=mirrors.c.bytes_sent + sum(len(blob.payload) for blob in blobs),
                )

    def stage(self, ticket: SyncTicket, page: ChangePage) -> bool:
        fabric = self.fabric
        with fabric.access("mirror stage", volume=ticket.volume), fabric.catalog.write() as conn:
            require_admin(fabric.principal, "sync mirrors")
            found = self._mirror_volume(conn, ticket.volume)
            return apply.stage_page(conn, found, state.require_mirror(conn, found), ticket, page)

    def commit(self, ticket: SyncTicket, source_next_counter: int) -> CommitResult:
        fabric = self.fabric
        with fabric.access("mirror commit", volume=ticket.volume) as note:
            require_admin(fabric.principal, "sync mirrors")
            try:
                with fabric.catalog.write() as conn:
                    found = self._mirror_volume(conn, ticket.volume)
                    row = state.require_mirror(conn, found)
                    result = apply.commit(
                        conn, found, row, ticket, source_next_counter, fabric.clock.now_ms()
                    )
            except sa.exc.IntegrityError as error:
                raise Conflict(
                    f"mirror volume {ticket.volume} no longer matches its last sync: {error.orig}"
                ) from error
            note.detail = f"now shows {result.snapshot} (+{result.rows_added} -{result.rows_removed} rows)"
            return result

    def end_sync(self, ticket: SyncTicket, *, error: str | None = None, restart: bool = False) -> None:
        fabric = self.fabric
        with fabric.access("mirror sync end", volume=ticket.volume), fabric.catalog.write() as conn:
            require_admin(fabric.principal, "sync mirrors")
            state.release(
                conn, volume_rows.get_volume(conn, ticket.volume), ticket, error=error, restart=restart
            )


def _status(volume: Volume, row: state.MirrorRow) -> MirrorStatus:
    return MirrorStatus(
        volume.name,
        row.source,
        row.state,
        row.owner,
        row.stop_requested,
        row.synced_snapshot,
        row.synced_version,
        row.synced_at,
        row.pending_snapshot,
        row.rows_staged,
        row.blobs_sent,
        row.bytes_sent,
        row.last_duration_ms,
        row.last_error,
    )
