"""The mirror transport: everything a sync needs from a fabric, as one small interface.

At this layer we deal in plain values (dataclasses of ids, rows and encoded blobs), never in
connections or open files, so an HTTPS client of a medfabric server is one more implementation
of ``Transport`` (the in-process one is ``replication.local``). See docs/design/mirrors.md.

What an implementation promises:
- Each call is one operation of the fabric's service: it is checked against the caller's rights
  and audited there, and it either happens entirely or raises ``MedfabricError``.
- ``put_blobs`` returns only when the blobs are durable at the mirror volume's minimum
  replication and indexed: a later ``missing_blobs`` never names them again (what makes a killed
  sync resume without sending a blob twice).
- ``stage`` commits a page of rows and the sync's resume point together; nothing it stages is
  visible in the namespace. ``commit`` makes every staged row visible in one catalog
  transaction, or none of them: a reader of the mirror sees the old state or the new one.
- ``read_blobs`` returns a blob's payload as stored (compressed, maybe encrypted) after checking
  its record's checksums; the receiving side verifies it again before storing it.
Not promised: ordering between calls of different syncs, or any retry: the caller retries.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class VolumeRef:
    """A volume as another fabric sees it."""

    fabric_id: str
    fabric_name: str
    id: int
    name: str
    type: str  # rw | mirror
    mount_path: str | None
    version: int  # the open version
    next_counter: int  # the volume's id counter (inodes, contents)
    created_at: int
    blob_scheme: str  # how blob ids are made: "blake3", or "blake3-keyed:<key fingerprint>"


@dataclass(frozen=True)
class EntryRow:
    """A namespace row of the source, in the source's ids; ``op`` says what the mirror does."""

    op: str  # add: visible in the new state; drop: visible in the old state only
    source_id: int  # the row's id in the source catalog (pages are ordered by it)
    parent_ino: int
    name: str
    ino: int
    kind: str
    mode: int
    owner: str
    grp: str
    size: int
    mtime_ns: int
    ctime_ns: int
    atime_ns: int
    content_id: int | None
    target: str | None
    aces: str | None


@dataclass(frozen=True)
class ExtentRow:
    seq: int
    file_offset: int
    length: int
    blob_id: bytes | None
    blob_offset: int


@dataclass(frozen=True)
class ContentRow:
    id: int
    size: int
    digest: bytes | None
    created_at: int
    extents: tuple[ExtentRow, ...]


@dataclass(frozen=True)
class ChangePage:
    """Rows born or died in (since, upto], after a cursor, with the bodies the new rows name."""

    entries: tuple[EntryRow, ...]
    contents: tuple[ContentRow, ...]
    cursor: int  # the last row's source id: where the next page starts
    done: bool

    def blob_ids(self) -> list[bytes]:
        return list(
            dict.fromkeys(
                extent.blob_id
                for content in self.contents
                for extent in content.extents
                if extent.blob_id is not None
            )
        )


@dataclass(frozen=True)
class TransferBlob:
    """A blob as stored: its codec byte, plaintext length and payload (see pack-format.md)."""

    blob_id: bytes
    codec: int
    length: int
    payload: bytes


@dataclass(frozen=True)
class SourceSpec:
    """Where a mirror's source is, as the mirror's fabric records it."""

    location: str | None  # a fabric home directory or URL; None: the mirror's own fabric
    remote: str | None  # the name it is registered under, if any
    fabric_id: str
    fabric_name: str
    volume: str
    volume_id: int
    blob_scheme: str


@dataclass(frozen=True)
class SyncTicket:
    """A sync in progress, as the mirror's fabric hands it to whoever drives it."""

    volume: str  # the mirror volume
    owner: str  # who drives the sync (host:pid:…): every later call must carry it
    source: SourceSpec
    snapshot: str  # the source snapshot this sync brings over
    version: int | None  # its version, once known
    since: int  # the source version the mirror shows now (0: a full sync)
    cursor: int  # resume after this source row
    synced_snapshot: str | None  # the source snapshot the mirror shows now
    stale_snapshot: str | None  # an older source snapshot the last sync could not remove
    resumed: bool = False  # it carries on an unfinished sync (whose source snapshot is older)

    @property
    def full(self) -> bool:
        return self.since == 0


@dataclass(frozen=True)
class CommitResult:
    rows_added: int
    rows_removed: int
    snapshot: str
    version: int


@dataclass(frozen=True)
class MirrorStatus:
    """A mirror volume's relationship to its source and the state of its sync."""

    volume: str
    source: SourceSpec
    state: str  # idle | syncing | stopped | failed
    owner: str | None
    stop_requested: bool
    synced_snapshot: str | None
    synced_version: int | None
    synced_at: int | None
    pending_snapshot: str | None
    rows_staged: int
    blobs_sent: int
    bytes_sent: int
    last_duration_ms: int | None
    last_error: str | None

    def as_json(self) -> dict[str, object]:
        return {
            "volumename": self.volume,
            "source": f"{self.source.volume}@{self.source.fabric_name}",
            "sourceLocation": self.source.location,
            "state": self.state,
            "driver": self.owner,
            "stopRequested": self.stop_requested,
            "lastSyncedSnapshot": self.synced_snapshot,
            "lastSyncedVersion": self.synced_version,
            "lastSyncedAt": self.synced_at,
            "syncInProgress": self.pending_snapshot,
            "rowsStaged": self.rows_staged,
            "blobsSent": self.blobs_sent,
            "bytesSent": self.bytes_sent,
            "lastSyncDurationMs": self.last_duration_ms,
            "lastError": self.last_error,
        }


@dataclass(frozen=True)
class ManifestEntry:
    """One path of a volume at one version, with the checksum of its bytes (files)."""

    path: str
    kind: str
    size: int
    mode: int
    owner: str
    group: str
    target: str | None
    digest: str | None  # hex BLAKE3 of the whole file


class Transport(abc.ABC):
    """One fabric, as a mirror sync reaches it (see the module docstring for the promises)."""

    fabric_id: str
    fabric_name: str
    location: str  # how this fabric is reached again (a home directory, later a URL)

    # -- as a source --

    @abc.abstractmethod
    def describe_volume(self, volume: str) -> VolumeRef:
        """A volume by name, or by its mount path (``/mri_studies``)."""

    @abc.abstractmethod
    def sync_snapshot(self, volume: str, name: str, *, create: bool) -> int | None:
        """The version of the volume's snapshot ``name``, taking it now if absent and ``create``."""

    @abc.abstractmethod
    def drop_snapshot(self, volume: str, name: str) -> None:
        """Remove a snapshot a sync took (absent: nothing to do)."""

    @abc.abstractmethod
    def changes(self, volume: str, since: int, upto: int, after: int, limit: int) -> ChangePage:
        """Rows born or died in versions (since, upto] with source id > ``after``, in id order."""

    @abc.abstractmethod
    def read_blobs(self, volume: str, blob_ids: Sequence[bytes]) -> list[TransferBlob]: ...

    @abc.abstractmethod
    def manifest(self, volume: str, snapshot: str | None, *, rehash: bool) -> list[ManifestEntry]:
        """Every path at a snapshot (None: live); ``rehash`` hashes the bytes rather than trusting
        the recorded digests."""

    @abc.abstractmethod
    def mirrors_of(self, fabric_id: str, volume_id: int) -> list[str]:
        """Names of this fabric's mirror volumes whose source is that volume of that fabric."""

    # -- as a mirror --

    @abc.abstractmethod
    def create_mirror(self, name: str, path: str | None, source: SourceSpec) -> VolumeRef: ...

    @abc.abstractmethod
    def mirror_status(self, volume: str) -> MirrorStatus: ...

    @abc.abstractmethod
    def stop_sync(self, volume: str) -> MirrorStatus:
        """Ask the sync in progress to stop after its current page (it resumes on the next start)."""

    @abc.abstractmethod
    def begin_sync(self, volume: str, owner: str, *, full: bool) -> SyncTicket:
        """Claim the mirror for a sync: resume the unfinished one, or start the next."""

    @abc.abstractmethod
    def missing_blobs(self, volume: str, blob_ids: Sequence[bytes]) -> set[bytes]: ...

    @abc.abstractmethod
    def put_blobs(self, ticket: SyncTicket, blobs: Sequence[TransferBlob]) -> None: ...

    @abc.abstractmethod
    def stage(self, ticket: SyncTicket, page: ChangePage) -> bool:
        """Stage a page and move the resume point; returns True when a stop was requested."""

    @abc.abstractmethod
    def commit(self, ticket: SyncTicket, source_next_counter: int) -> CommitResult: ...

    @abc.abstractmethod
    def end_sync(self, ticket: SyncTicket, *, error: str | None = None, restart: bool = False) -> None:
        """Release the claim (recording an error); ``restart`` discards what was staged."""

    def close(self) -> None:  # noqa: B027 - optional: an in-process fabric may need closing
        """Release what reaching the fabric took (connections, an opened fabric)."""
