"""DICOM in the service layer: ingest (one pipeline for every path), bulk import, the drop folder,
the imaging index (`find`, `reindex`) and the ingest settings.

Every front end (CLI, DICOMweb, DIMSE, S3) reaches imaging through this class; it checks and audits
like the rest of the service and never lets a caller near the catalog or the blob store.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.catalog.schema import config_values
from medfabric.docdb.conditions import condition_from_text
from medfabric.errors import InvalidInput, NotFound
from medfabric.fs import namespace
from medfabric.fs import volumes as volume_rows
from medfabric.fs.model import Volume
from medfabric.imaging import index
from medfabric.imaging.index import reconcile
from medfabric.imaging.ingest.importer import (
    Ingest,
    ProcessIngest,
    Progress,
    collect_files,
    import_files,
)
from medfabric.imaging.ingest.metadata import Placement, document_id, metadata_document
from medfabric.imaging.ingest.model import IngestItem, IngestReport, ParsedInstance
from medfabric.imaging.ingest.parse import MAGIC, PREAMBLE, parse_instance
from medfabric.imaging.ingest.pipeline import (
    DEFAULT_METADATA_TABLE,
    POLICIES,
    SETTING_DEFAULT_VOLUME,
    SETTING_METADATA_TABLE,
    SETTING_POLICY,
    SETTING_ROUTES,
    DicomSettings,
    IngestPipeline,
)
from medfabric.imaging.ingest.routing import parse_routes
from medfabric.imaging.ingest.watcher import DropFolder, watch
from medfabric.service.access import READ, decide, require_admin, volume_read_access

if TYPE_CHECKING:
    from medfabric.service.fabric import Fabric


def _metadata_table(conn: Connection) -> str | None:
    """The metadata table's path (the setting, read in the caller's transaction), or None."""
    value = conn.execute(
        sa.select(config_values.c.value).where(config_values.c.key == SETTING_METADATA_TABLE)
    ).scalar()
    table = DEFAULT_METADATA_TABLE if value is None else str(value).strip()
    return table or None


class DicomService:
    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric

    # -- settings --

    def settings(self) -> DicomSettings:
        return DicomSettings.from_settings(self.fabric.settings())

    def configuration(self) -> dict[str, Any]:
        settings = self.settings()
        return {
            "routes": [route.spec for route in settings.routes],
            "defaultVolume": settings.default_volume,
            "duplicatePolicy": settings.policy,
            "metadataTable": settings.metadata_table,
        }

    def configure(
        self,
        *,
        routes: Sequence[Mapping[str, Any]] | str | None = None,
        default_volume: str | None = None,
        policy: str | None = None,
        metadata_table: str | None = None,
    ) -> dict[str, Any]:
        """Check and save ingest settings (administrators only); None leaves a setting as it is."""
        values: dict[str, str] = {}
        if routes is not None:
            parsed = parse_routes(routes if isinstance(routes, str) else list(routes))
            self._require_volumes([route.volume for route in parsed])
            values[SETTING_ROUTES] = json.dumps([route.spec for route in parsed])
        if default_volume is not None:
            if default_volume:
                self._require_volumes([default_volume])
            values[SETTING_DEFAULT_VOLUME] = default_volume
        if policy is not None:
            if policy not in POLICIES:
                raise InvalidInput(f"duplicate policy must be one of {', '.join(POLICIES)}, not {policy!r}")
            values[SETTING_POLICY] = policy
        if metadata_table is not None:
            values[SETTING_METADATA_TABLE] = metadata_table
        if values:
            self.fabric.admin.config_save(values)
        return self.configuration()

    def _require_volumes(self, names: list[str]) -> None:
        known = {volume.name for volume in self.fabric.volumes.list()}
        missing = sorted(set(names) - known)
        if missing:
            raise NotFound(f"no volume named {', '.join(missing)}")

    # -- ingest --

    def ingest(
        self, items: list[IngestItem], *, volume: str | None = None, policy: str | None = None
    ) -> IngestReport:
        """The one pipeline: every ingest path (import, drop folder, C-STORE, STOW-RS, S3) calls this."""
        return IngestPipeline(self.fabric).run(items, volume=volume, policy=policy)

    def import_paths(
        self,
        paths: Sequence[Path | str],
        *,
        volume: str | None = None,
        policy: str | None = None,
        workers: int | None = None,
        progress: Progress | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> IngestReport:
        """Import local files and directories (recursively); see ``medfabric dicom import``."""
        self._require_destination(volume)
        files = collect_files([Path(path) for path in paths])
        if on_start is not None:
            on_start(len(files))
        pipeline = IngestPipeline(self.fabric)

        def in_a_writer_process() -> tuple[Ingest, Callable[[], None]]:
            fabric = self.fabric.reopened()
            there = IngestPipeline(fabric, pipeline.settings)
            return (lambda items: there.run(items, volume=volume, policy=policy)), fabric.close

        return import_files(
            files,
            lambda items: pipeline.run(items, volume=volume, policy=policy),
            workers=workers,
            progress=progress,
            # other processes may write only where nobody in this one listens for what they do
            processes=ProcessIngest(in_a_writer_process, self.fabric.quiesced)
            if self.fabric.runs_alone()
            else None,
        )

    def drop_folder(
        self, directory: Path | str, *, volume: str | None = None, archive: Path | str | None = None
    ) -> DropFolder:
        self._require_destination(volume)
        pipeline = IngestPipeline(self.fabric)
        return DropFolder(
            Path(directory),
            lambda items: pipeline.run(items, volume=volume),
            archive=Path(archive) if archive is not None else None,
        )

    def watch(
        self,
        directory: Path | str,
        *,
        volume: str | None = None,
        archive: Path | str | None = None,
        once: bool = False,
        interval: float = 1.0,
        stop: threading.Event | None = None,
        on_report: Callable[[IngestReport], None] | None = None,
    ) -> IngestReport:
        """Ingest files dropped into ``directory`` until ``stop`` is set (``once``: what is there now)."""
        if interval <= 0:
            raise InvalidInput("the polling interval must be positive")
        folder = self.drop_folder(directory, volume=volume, archive=archive)
        return watch(folder, interval=interval, once=once, stop=stop, on_report=on_report)

    def _require_destination(self, volume: str | None) -> None:
        """Fail early when nothing could say where instances go."""
        if volume is not None:
            self._require_volumes([volume])
            return
        settings = self.settings()
        if not settings.routes and settings.default_volume is None:
            raise InvalidInput(
                "no volume for DICOM ingest: pass -volume, or set routing rules / a default volume "
                "(`medfabric dicom routes -default VOLUME`)"
            )

    # -- the index --

    def find(
        self,
        level: str = "study",
        condition: Mapping[str, Any] | str | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Patients, studies, series or instances matching a MongoDB-style condition."""
        parsed = condition_from_text(condition)
        fabric = self.fabric
        with fabric.access("dicom find") as note, fabric.catalog.read() as conn:
            note.detail = f"{level} {json.dumps(parsed) if parsed else '{}'}"
            if fabric.principal.admin:
                return index.find(conn, level, parsed, limit=limit, offset=offset)
            return self._find_readable(conn, level, parsed, limit, offset)

    def _find_readable(
        self,
        conn: Connection,
        level: str,
        condition: Mapping[str, Any] | None,
        limit: int | None,
        offset: int,
    ) -> list[dict[str, Any]]:
        """``find`` for a principal who is not an administrator: only what they may read. Patients,
        studies and series show when an instance of theirs is in a volume whose ACL lets the principal
        read it; an instance also when the volume's readAce admits them and the file's ACE or mode
        lets them read the file. (Counts such as number_of_study_related_instances count every volume.)"""
        principal = self.fabric.principal
        whole: set[int] = set()
        per_file: dict[int, Volume] = {}
        for volume in volume_rows.list_volumes(conn):
            access = volume_read_access(principal, volume)
            if access == "all":
                whole.add(volume.id)
            elif access == "per-file":
                per_file[volume.id] = volume
        if level != "instance" or not per_file:
            return index.find(conn, level, condition, limit=limit, offset=offset, volumes=whole)
        rows = index.find(conn, level, condition, volumes=whole | per_file.keys(), with_ino=True)
        visible = []
        for row in rows:
            volume_id, ino = row.pop("_volume_id"), row.pop("_ino")
            if volume_id not in whole:
                entry = namespace.get_by_ino(conn, volume_id, ino)
                if entry is None or not decide(principal, per_file[volume_id], entry, READ)[0]:
                    continue
            visible.append(row)
        return visible[offset : None if limit is None else offset + limit]

    def summary(self) -> list[dict[str, Any]]:
        """Instances, bytes, series and studies per volume and modality."""
        with self.fabric.access("dicom summary"), self.fabric.catalog.read() as conn:
            return index.query.summary(conn)

    def reindex(self, volume: str | None = None) -> list[dict[str, Any]]:
        """Bring the index in line with the namespace (files removed, renamed or written by hand)."""
        fabric = self.fabric
        require_admin(fabric.principal, "reindex DICOM volumes")
        targets = [fabric.volumes.info(volume)] if volume else fabric.volumes.list()
        results = [self._reindex_volume(target) for target in targets if target.mounted]
        if volume is None:
            results.extend(self._forget_removed_volumes())
        return results

    def _forget_removed_volumes(self) -> list[dict[str, Any]]:
        fabric = self.fabric
        with fabric.access("dicom reindex"), fabric.catalog.write() as conn:
            orphans = reconcile.orphaned_rows(conn)
            if not orphans:
                return []
            now = fabric.clock.now_ms()
            touched = index.delete_instances(conn, [row.id for row in orphans])
            touched |= reconcile.recompute_latest(conn, [row.sop_uid for row in orphans])
            index.refresh_counts(conn, touched, now)
        table = self.settings().metadata_table
        if table:
            self._fix_documents(table, orphans, {}, orphans)
        return [
            {"volume": "(removed volumes)", "removed": len(orphans), "moved": 0, "added": 0, "skipped": 0}
        ]

    def _reindex_volume(self, target: Any) -> dict[str, Any]:
        fabric = self.fabric
        settings = self.settings()
        with fabric.access("dicom reindex", target.mount_path, target.name), fabric.catalog.read() as conn:
            files = reconcile.live_files(conn, target)
            rows = reconcile.indexed_rows(conn, target.id)
        indexed = {row.ino for row in rows}
        gone = [row for row in rows if row.ino not in files]
        moved = {row.id: files[row.ino] for row in rows if row.ino in files and files[row.ino] != row.path}
        records: list[index.InstanceRecord] = []
        documents: list[dict[str, Any]] = []
        skipped = 0
        now = fabric.clock.now_ms()
        for ino, path in sorted(files.items(), key=lambda item: item[1]):
            if ino in indexed:
                continue
            parsed = self._read_instance(path)
            if parsed is None:
                skipped += 1
                continue
            with fabric.catalog.read() as conn:
                versions = [
                    r.version
                    for r in index.lookup(conn, [parsed.sop_instance_uid]).get(parsed.sop_instance_uid, [])
                ]
            version = (
                max(
                    versions
                    + [r.version for r in records if r.parsed.sop_instance_uid == parsed.sop_instance_uid],
                    default=0,
                )
                + 1
            )
            records.append(index.InstanceRecord(parsed, target.id, ino, path, version, now))
            documents.append(metadata_document(parsed, Placement(target.name, path, version, now)))
        with fabric.catalog.write() as conn:
            touched = index.delete_instances(conn, [row.id for row in gone])
            touched |= reconcile.recompute_latest(conn, [row.sop_uid for row in gone])
            reconcile.update_paths(conn, moved)
            touched |= index.record(conn, records, now)
            index.refresh_counts(conn, touched, now)
            if settings.metadata_table and documents:
                fabric.tables.upsert_documents(conn, settings.metadata_table, documents)
        if settings.metadata_table:
            self._fix_documents(settings.metadata_table, gone, moved, rows)
        return {
            "volume": target.name,
            "removed": len(gone),
            "moved": len(moved),
            "added": len(records),
            "skipped": skipped,
        }

    # -- following the namespace (fs rm, fs mv), inside the transaction that changes it --

    def files_removed(self, conn: Connection, volume_id: int, inos: Collection[int]) -> None:
        """These files of the volume are gone: their instances leave the index and the metadata
        table (a file the index does not know costs one indexed lookup)."""
        rows = reconcile.rows_of_files(conn, volume_id, inos) if inos else []
        if not rows:
            return
        now = self.fabric.clock.now_ms()
        touched = index.delete_instances(conn, [row.id for row in rows])
        touched |= reconcile.recompute_latest(conn, [row.sop_uid for row in rows])
        index.refresh_counts(conn, touched, now)
        self._change_documents(conn, [("delete", row, ()) for row in rows])

    def files_moved(
        self,
        conn: Connection,
        volume_id: int,
        source: str,
        destination: str,
        target: Volume | None = None,
        inode_of: Callable[[str], int | None] | None = None,
        *,
        file_ino: int | None = None,
    ) -> None:
        """The file (``file_ino``: found by its inode, one indexed lookup) or the tree at ``source``
        (found by path: a scan of the volume's instances) is now at ``destination`` — in ``target``,
        with the new inodes ``inode_of`` gives, when it moved to another volume: its instances' rows
        and documents follow it."""
        if file_ino is not None:
            rows = reconcile.rows_of_files(conn, volume_id, [file_ino])
        else:
            rows = reconcile.rows_under(conn, volume_id, source)
        changes: list[tuple[str, Any, tuple[Any, ...]]] = []
        for row in rows:
            path = destination + row.path[len(source) :]
            values: dict[str, Any] = {"path": path}
            document: dict[str, Any] = {"path": path}
            if target is not None and inode_of is not None:
                ino = inode_of(path)
                if ino is None:  # not copied after all: it is gone
                    self.files_removed(conn, volume_id, [row.ino])
                    continue
                values.update(volume_id=target.id, ino=ino)
                document["volume"] = target.name
            reconcile.update_row(conn, row.id, values)
            changes.append(("update", row, ({"$set": document},)))
        self._change_documents(conn, changes)

    def _change_documents(self, conn: Connection, changes: list[tuple[str, Any, tuple[Any, ...]]]) -> None:
        """The metadata documents of index rows: (operation, row, its arguments) each."""
        path = _metadata_table(conn) if changes else None
        if path is None:
            return
        indexer = self.fabric.acting_as(replace(self.fabric.principal, admin=True))
        try:
            table = indexer.tables.writable_within(conn, path)
        except NotFound:
            return
        for operation, row, args in changes:
            with contextlib.suppress(NotFound):
                getattr(table, operation)(conn, document_id(row.sop_uid, row.version), *args)

    def _read_instance(self, path: str) -> ParsedInstance | None:
        with self.fabric.fs.open(path) as reader:
            head = reader.read(PREAMBLE + len(MAGIC))
            if head[PREAMBLE:] != MAGIC:
                return None
            data = head + reader.read()
        parsed = parse_instance(data)
        return parsed if isinstance(parsed, ParsedInstance) else None

    def _fix_documents(self, table: str, gone: list[Any], moved: dict[int, str], rows: list[Any]) -> None:
        if not self.fabric.tables.exists(table):
            return
        for row in gone:
            try:
                self.fabric.tables.change(table, "delete", document_id(row.sop_uid, row.version))
            except NotFound:
                pass
        by_id = {row.id: row for row in rows}
        for row_id, path in moved.items():
            row = by_id[row_id]
            try:
                self.fabric.tables.change(
                    table, "update", document_id(row.sop_uid, row.version), {"$set": {"path": path}}
                )
            except NotFound:
                pass
