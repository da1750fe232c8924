"""Driving a mirror sync between two fabrics, through their transports.

The protocol (docs/design/mirrors.md): claim the mirror; snapshot the source (it stays
writable); page through the rows born or died since the last synced snapshot; for each page send
the blobs the mirror lacks, then stage the page; commit everything in one transaction on the
mirror; remove the older source snapshot. A sync killed at any point resumes where its last
staged page ended, and blobs already sent are not sent again.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

from medfabric.errors import Conflict, InvalidInput, MedfabricError
from medfabric.replication.transport import ChangePage, SourceSpec, SyncTicket, TransferBlob, Transport

PAGE_ROWS = 2000
BATCH_BYTES = 64 * 1024 * 1024
BATCH_BLOBS = 4096


@dataclass(frozen=True)
class SyncResult:
    volume: str
    snapshot: str  # the source snapshot the mirror now shows
    full: bool
    resumed: bool
    stopped: bool
    rows_added: int
    rows_removed: int
    blobs_sent: int
    bytes_sent: int
    seconds: float

    def as_json(self) -> dict[str, object]:
        return {
            "volume": self.volume,
            "snapshot": self.snapshot,
            "full": self.full,
            "resumed": self.resumed,
            "stopped": self.stopped,
            "rowsAdded": self.rows_added,
            "rowsRemoved": self.rows_removed,
            "blobsSent": self.blobs_sent,
            "bytesSent": self.bytes_sent,
            "seconds": round(self.seconds, 3),
        }


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


SourceOpener = Callable[[SourceSpec], Transport]


class MirrorSync:
    """One sync of one mirror volume, reached through ``target``; ``open_source`` reaches its source."""

    def __init__(self, target: Transport, volume: str, open_source: SourceOpener) -> None:
        self.target = target
        self.volume = volume
        self.open_source = open_source
        self.blobs_sent = 0
        self.bytes_sent = 0

    def run(self, *, full: bool = False, owner: str | None = None) -> SyncResult:
        """Sync the mirror up to now. A sync that resumes an unfinished one brings over the source
        snapshot that one took, maybe long ago; it is then followed by a sync from that to now."""
        started = time.monotonic()
        owner = owner or new_owner()
        first = self._once(full=full, owner=owner, started=started)
        if not first.resumed or first.stopped:
            return first
        second = self._once(full=False, owner=owner, started=started)
        return replace(
            second,
            full=first.full or second.full,
            resumed=True,
            rows_added=first.rows_added + second.rows_added,
            rows_removed=first.rows_removed + second.rows_removed,
        )

    def _once(self, *, full: bool, owner: str, started: float) -> SyncResult:
        ticket = self.target.begin_sync(self.volume, owner, full=full)
        resumed = ticket.resumed
        try:
            source = self.open_source(ticket.source)
        except BaseException as error:
            self.target.end_sync(ticket, error=_describe(error))
            raise
        try:
            ticket = self._prepare(source, ticket)
            # A source snapshot an earlier sync could not remove goes now, before this sync's commit
            # names a newer one stale: the row remembers one stale snapshot, not a list of them.
            if ticket.stale_snapshot not in (None, ticket.snapshot, ticket.synced_snapshot):
                assert ticket.stale_snapshot is not None
                source.drop_snapshot(ticket.source.volume, ticket.stale_snapshot)
            for attempt in range(2):
                try:
                    ticket, stopped = self._transfer(source, ticket)
                    if stopped:
                        self.target.end_sync(ticket)
                        return self._result(ticket, started, resumed, stopped=True)
                    committed = self.target.commit(
                        ticket, source.describe_volume(ticket.source.volume).next_counter
                    )
                    break
                except Conflict:
                    # The mirror diverged from what it last synced, or staged blobs were collected:
                    # start over as a full sync (blobs it already holds are not sent again).
                    if attempt:
                        raise
                    self.target.end_sync(ticket, restart=True)
                    ticket = self._prepare(source, self.target.begin_sync(self.volume, owner, full=True))
            for name in {ticket.synced_snapshot, ticket.stale_snapshot} - {None, ticket.snapshot}:
                assert name is not None
                source.drop_snapshot(ticket.source.volume, name)
            return SyncResult(
                self.volume,
                committed.snapshot,
                ticket.full,
                resumed,
                False,
                committed.rows_added,
                committed.rows_removed,
                self.blobs_sent,
                self.bytes_sent,
                time.monotonic() - started,
            )
        except BaseException as error:
            self.target.end_sync(ticket, error=_describe(error))
            raise
        finally:
            source.close()

    def _prepare(self, source: Transport, ticket: SyncTicket) -> SyncTicket:
        """Check the two ends agree on blob ids, and take (or find) this sync's source snapshot."""
        spec = ticket.source
        origin = source.describe_volume(spec.volume)
        mirror = self.target.describe_volume(self.volume)
        if origin.fabric_id != spec.fabric_id or origin.id != spec.volume_id:
            raise Conflict(
                f"the source volume {spec.volume} of fabric {spec.fabric_name} is not the one this "
                "mirror was made from (removed and created again?): make the mirror again"
            )
        if origin.blob_scheme != mirror.blob_scheme or origin.blob_scheme != spec.blob_scheme:
            raise InvalidInput(
                f"volume {spec.volume} names its blobs with {origin.blob_scheme} and mirror volume "
                f"{self.volume} with {mirror.blob_scheme}: blobs would need re-identifying, "
                "which this version does not do"
            )
        if not ticket.full and ticket.synced_snapshot is not None:
            base = source.sync_snapshot(spec.volume, ticket.synced_snapshot, create=False)
            if base != ticket.since:
                # The snapshot the mirror was synced from is gone: only a full sync can be exact.
                self.target.end_sync(ticket, restart=True)
                return self._prepare(source, self.target.begin_sync(self.volume, ticket.owner, full=True))
        version = source.sync_snapshot(spec.volume, ticket.snapshot, create=True)
        return replace(ticket, version=version)

    def _transfer(self, source: Transport, ticket: SyncTicket) -> tuple[SyncTicket, bool]:
        assert ticket.version is not None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="medfabric-mirror-read") as reader:
            while True:
                page = source.changes(
                    ticket.source.volume, ticket.since, ticket.version, ticket.cursor, PAGE_ROWS
                )
                self._send_blobs(source, ticket, page, reader)
                stop = self.target.stage(ticket, page)
                ticket = replace(ticket, cursor=page.cursor)
                if stop:
                    return ticket, True
                if page.done:
                    return ticket, False

    def _send_blobs(
        self, source: Transport, ticket: SyncTicket, page: ChangePage, reader: ThreadPoolExecutor
    ) -> None:
        """Blobs the mirror lacks, read from the source one batch ahead of the writes."""
        wanted = page.blob_ids()
        if not wanted:
            return
        missing = self.target.missing_blobs(self.volume, wanted)
        sizes: dict[bytes, int] = {}
        for content in page.contents:
            for extent in content.extents:
                if extent.blob_id is not None:
                    end = extent.blob_offset + extent.length
                    sizes[extent.blob_id] = max(sizes.get(extent.blob_id, 0), end)
        batches = _batches([blob_id for blob_id in wanted if blob_id in missing], sizes)
        volume = ticket.source.volume
        pending: Future[list[TransferBlob]] | None = None
        for batch in batches:
            following = reader.submit(source.read_blobs, volume, batch)
            if pending is not None:
                self._put(ticket, pending.result())
            pending = following
        if pending is not None:
            self._put(ticket, pending.result())

    def _put(self, ticket: SyncTicket, blobs: list[TransferBlob]) -> None:
        self.target.put_blobs(ticket, blobs)
        self.blobs_sent += len(blobs)
        self.bytes_sent += sum(len(blob.payload) for blob in blobs)

    def _result(self, ticket: SyncTicket, started: float, resumed: bool, *, stopped: bool) -> SyncResult:
        return SyncResult(
            self.volume,
            ticket.snapshot,
            ticket.full,
            resumed,
            stopped,
            0,
            0,
            self.blobs_sent,
            self.bytes_sent,
            time.monotonic() - started,
        )


def _batches(blob_ids: list[bytes], sizes: dict[bytes, int]) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    total = 0
    for blob_id in blob_ids:
        batch.append(blob_id)
        total += sizes.get(blob_id, 0)
        if total >= BATCH_BYTES or len(batch) >= BATCH_BLOBS:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


def _describe(error: BaseException) -> str:
    if isinstance(error, MedfabricError):
        return f"{error.code}: {error.message}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
