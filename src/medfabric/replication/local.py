"""The in-process transport: a fabric opened in this process (this one, or another by its home).

Each call goes to that fabric's service (``fabric.mirrors.peer``), so rights are checked and the
access audited by the fabric being reached, exactly as a server would do for an HTTPS transport.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from medfabric.replication.transport import (
    ChangePage,
    CommitResult,
    ManifestEntry,
    MirrorStatus,
    SourceSpec,
    SyncTicket,
    TransferBlob,
    Transport,
    VolumeRef,
)

if TYPE_CHECKING:
    from medfabric.service.fabric import Fabric


class LocalTransport(Transport):
    def __init__(self, fabric: Fabric, *, owned: bool = False) -> None:
        """``owned``: this transport opened the fabric, and closes it when it is closed."""
        self.fabric = fabric
        self.peer = fabric.mirrors.peer
        self.fabric_id = fabric.config.fabric_id
        self.fabric_name = fabric.name
        self.location = str(fabric.config.home.resolve())
        self._owned = owned

    def describe_volume(self, volume: str) -> VolumeRef:
        return self.peer.describe_volume(volume)

    def sync_snapshot(self, volume: str, name: str, *, create: bool) -> int | None:
        return self.peer.sync_snapshot(volume, name, create=create)

    def drop_snapshot(self, volume: str, name: str) -> None:
        self.peer.drop_snapshot(volume, name)

    def changes(self, volume: str, since: int, upto: int, after: int, limit: int) -> ChangePage:
        return self.peer.changes(volume, since, upto, after, limit)

    def read_blobs(self, volume: str, blob_ids: Sequence[bytes]) -> list[TransferBlob]:
        return self.peer.read_blobs(volume, blob_ids)

    def manifest(self, volume: str, snapshot: str | None, *, rehash: bool) -> list[ManifestEntry]:
        return self.peer.manifest(volume, snapshot, rehash=rehash)

    def mirrors_of(self, fabric_id: str, volume_id: int) -> list[str]:
        return self.peer.mirrors_of(fabric_id, volume_id)

    def create_mirror(self, name: str, path: str | None, source: SourceSpec) -> VolumeRef:
        return self.peer.create_mirror(name, path, source)

    def mirror_status(self, volume: str) -> MirrorStatus:
        return self.peer.mirror_status(volume)

    def stop_sync(self, volume: str) -> MirrorStatus:
        return self.peer.stop_sync(volume)

    def begin_sync(self, volume: str, owner: str, *, full: bool) -> SyncTicket:
        return self.peer.begin_sync(volume, owner, full=full)

    def missing_blobs(self, volume: str, blob_ids: Sequence[bytes]) -> set[bytes]:
        return self.peer.missing_blobs(volume, blob_ids)

    def put_blobs(self, ticket: SyncTicket, blobs: Sequence[TransferBlob]) -> None:
        self.peer.put_blobs(ticket, blobs)

    def stage(self, ticket: SyncTicket, page: ChangePage) -> bool:
        return self.peer.stage(ticket, page)

    def commit(self, ticket: SyncTicket, source_next_counter: int) -> CommitResult:
        return self.peer.commit(ticket, source_next_counter)

    def end_sync(self, ticket: SyncTicket, *, error: str | None = None, restart: bool = False) -> None:
        self.peer.end_sync(ticket, error=error, restart=restart)

    def close(self) -> None:
        if self._owned:
            self.fabric.close()
