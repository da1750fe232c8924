"""Scrub of the service: verify every replica of every blob, repair, report, raise alarms.

With ``repair``, bad or missing replicas are rewritten from a good one, under-replicated packs
get new replicas, and blobs that no replica holds intact are fetched from a mirror (either way
round: this volume's mirrors, or the source this mirror follows). What cannot be repaired is
reported with the paths, live and in snapshots, whose bytes it holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from medfabric import alarms as alarm_rows
from medfabric.blobstore import codec as codecs
from medfabric.blobstore.index import PackRow, pack_row
from medfabric.blobstore.pack import encode_record
from medfabric.catalog.schema import packs
from medfabric.fs import scrub as scrubbing
from medfabric.fs import volumes as volume_rows
from medfabric.fs.model import Volume
from medfabric.replication.transport import TransferBlob
from medfabric.service.access import require_admin

if TYPE_CHECKING:
    from medfabric.service.fabric import Fabric


@dataclass
class ScrubReport:
    volume: str | None
    repair: bool
    packs: int = 0
    replicas: int = 0
    blobs: int = 0
    bytes_read: int = 0
    problems: list[scrubbing.Finding] = field(default_factory=list)
    repaired: list[dict[str, Any]] = field(default_factory=list)
    under_replicated: list[dict[str, Any]] = field(default_factory=list)
    recovered: list[dict[str, Any]] = field(default_factory=list)
    unrecoverable: list[dict[str, Any]] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    garbage: list[dict[str, Any]] = field(default_factory=list)  # damaged records no blob uses

    @property
    def clean(self) -> bool:
        return not (self.problems or self.under_replicated or self.unrecoverable)

    def summary(self) -> str:
        return (
            f"{self.packs} packs, {self.replicas} replicas, {self.blobs} blobs checked: "
            f"{len(self.problems)} bad replicas, {len(self.repaired)} repairs, "
            f"{len(self.under_replicated)} under-replicated packs, {len(self.recovered)} blobs recovered "
            f"from mirrors, {len(self.unrecoverable)} unrecoverable"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "volume": self.volume,
            "repair": self.repair,
            "packs": self.packs,
            "replicas": self.replicas,
            "blobs": self.blobs,
            "bytesRead": self.bytes_read,
            "problems": [problem.as_json() for problem in self.problems],
            "repaired": self.repaired,
            "underReplicated": self.under_replicated,
            "recovered": self.recovered,
            "unrecoverable": self.unrecoverable,
            "busy": self.busy,
            "unreferencedDamage": self.garbage,
        }


class ScrubService:
    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric

    def run(self, volume: str | None = None, *, repair: bool = False) -> ScrubReport:
        fabric = self.fabric
        report = ScrubReport(volume, repair)
        with fabric.access("scrub", volume=volume) as note:
            require_admin(fabric.principal, "scrub the fabric")
            with fabric.catalog.read() as conn:
                chosen = [volume_rows.get_volume(conn, volume)] if volume else volume_rows.list_volumes(conn)
                rows = [
                    pack_row(row)
                    for row in conn.execute(
                        sa.select(packs)
                        .where(packs.c.volume_id.in_([v.id for v in chosen]), packs.c.state != "deleting")
                        .order_by(packs.c.volume_id, packs.c.id)
                    )
                ]
            by_id = {v.id: v for v in chosen}
            damaged: dict[int, list[scrubbing.PackScan]] = {}
            for row in rows:
                scan = self._scrub_pack(row, by_id[row.volume_id], report)
                if scan.bad_blobs:
                    damaged.setdefault(row.volume_id, []).append(scan)
            for volume_id, scans in damaged.items():
                self._recover(by_id[volume_id], scans, report)
            self._alarms(chosen, report)
            note.detail = report.summary()
        return report

    def _wanted(self, volume: Volume) -> int:
        return max(1, min(volume.replication, self.fabric.store.max_replication()))

    def _scrub_pack(self, row: PackRow, volume: Volume, report: ScrubReport) -> scrubbing.PackScan:
        fabric = self.fabric
        store = fabric.store
        with fabric.catalog.read() as conn:
            indexed = scrubbing.indexed_records(conn, row.pack_id)
        scan = scrubbing.scan_pack(store, row, indexed, fabric.codec_policy(volume))
        report.packs += 1
        report.replicas += len(row.replicas)
        report.blobs += scan.blobs_checked
        report.bytes_read += scan.bytes_read
        report.problems.extend(scan.findings)
        report.garbage.extend({"pack": row.pack_id, "offset": offset} for offset in scan.garbage)
        if not scan.bad_blobs:  # else settled once mirrors had their say (_recover)
            self._settle(scan, volume, report)
        return scan

    def _settle(self, scan: scrubbing.PackScan, volume: Volume, report: ScrubReport) -> None:
        """Repair the pack's replicas if asked; report it if it stays under-replicated."""
        wanted = self._wanted(volume)
        have = len(set(scan.readable) & set(scan.row.replicas))
        if report.repair and (scan.fixable or have < wanted):
            have = self._repair(scan, wanted, report)
        if have < wanted:
            report.under_replicated.append(
                {"pack": scan.row.pack_id, "volume": volume.name, "replicas": have, "wanted": wanted}
            )

    def _repair(self, scan: scrubbing.PackScan, wanted: int, report: ScrubReport) -> int:
        """Rewrite the pack's bad replicas and add missing ones; returns the replicas it now has."""
        store = self.fabric.store
        row = scan.row
        rewritten, added, busy = scrubbing.repair_pack(store, scan, wanted, store.writer_id)
        if busy:
            report.busy.append(row.pack_id)
        report.repaired.extend(
            {"pack": row.pack_id, "location": loc, "action": "rewritten"} for loc in rewritten
        )
        report.repaired.extend(
            {"pack": row.pack_id, "location": loc, "action": "replica added"} for loc in added
        )
        return len((set(scan.readable) | set(rewritten)) & set(row.replicas)) + len(added)

    def _recover(self, volume: Volume, scans: list[scrubbing.PackScan], report: ScrubReport) -> None:
        """Blobs no replica holds intact: put a mirror's copy back in place (or, if it is encoded
        differently, in a new pack); report the rest with the paths that use them."""
        fabric = self.fabric
        wanted = [blob_id for scan in scans for blob_id, _offset, _stored in scan.bad_blobs]
        recovered: set[bytes] = set()
        if report.repair:
            copies = self._verified_copies(volume, wanted)
            moved: list[tuple[bytes, int, int, bytes]] = []
            for scan in scans:
                for blob_id, offset, _stored in scan.bad_blobs:
                    blob = copies.get(blob_id)
                    if blob is None:
                        continue
                    record = encode_record(blob_id, blob.codec, blob.length, blob.payload)
                    if not scrubbing.patch_record(scan, offset, record):
                        moved.append((blob_id, blob.codec, blob.length, blob.payload))
                    recovered.add(blob_id)
            scrubbing.relocate(fabric.store, volume.id, fabric.placement(volume), moved)
            report.recovered.extend(
                {"volume": volume.name, "blob": blob_id.hex(), "from": "mirror"}
                for blob_id in sorted(recovered)
            )
        for scan in scans:
            self._settle(scan, volume, report)
        with fabric.catalog.read() as conn:
            for blob_id in wanted:
                if blob_id not in recovered:
                    paths = scrubbing.affected_paths(conn, volume, blob_id)
                    report.unrecoverable.append(
                        {"volume": volume.name, "blob": blob_id.hex(), "paths": paths}
                    )

    def _verified_copies(self, volume: Volume, blob_ids: list[bytes]) -> dict[bytes, TransferBlob]:
        policy = self.fabric.codec_policy(volume)
        good: dict[bytes, TransferBlob] = {}
        for blob_id, blob in self.fabric.mirrors.fetch_copies(volume, blob_ids).items():
            try:
                codecs.decode(policy, blob_id, blob.codec, blob.payload, blob.length)
            except Exception:  # noqa: BLE001 - a copy that does not verify is no copy
                continue
            good[blob_id] = blob
        return good

    def _alarms(self, chosen: list[Volume], report: ScrubReport) -> None:
        fabric = self.fabric
        now = fabric.clock.now_ms()
        short_of: dict[str, int] = {}
        for item in report.under_replicated:
            short_of[item["volume"]] = short_of.get(item["volume"], 0) + 1
        lost = {item["volume"] for item in report.unrecoverable}
        with fabric.catalog.write() as conn:
            for volume in chosen:
                entity = f"volume {volume.name}"
                count = short_of.get(volume.name, 0)
                if count:
                    alarm_rows.raise_alarm(
                        conn,
                        alarm_rows.DATA_UNDER_REPLICATED,
                        entity,
                        f"{count} packs have fewer than {volume.replication} replicas "
                        "(run `medfabric scrub -repair`)",
                        now,
                    )
                else:
                    alarm_rows.clear_alarm(conn, alarm_rows.DATA_UNDER_REPLICATED, entity, now)
                if volume.name in lost:
                    alarm_rows.raise_alarm(
                        conn,
                        alarm_rows.BLOB_CORRUPTION,
                        entity,
                        f"{sum(1 for item in report.unrecoverable if item['volume'] == volume.name)} blobs "
                        "have no intact copy in any replica or mirror (see `medfabric scrub`)",
                        now,
                    )
