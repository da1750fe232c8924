"""The one ingest pipeline every ingest path calls: parse → validate → place → store → index →
publish → audit.

Files are written with ``fabric.fs.write_many``; the index rows and the metadata documents are
written by its ``on_commit`` hook, inside each volume's write transaction, so an instance is either
stored and indexed or neither. Events go out only after commit. Bad input becomes a rejected
outcome and never stops the batch; a refusal of the fabric (quota, rights, read-only) fails the
items it concerns. It never opens the catalog or the blob store for writing itself.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.errors import (
    Conflict,
    InvalidInput,
    MedfabricError,
    NotEmpty,
    NotFound,
    PermissionDenied,
)
from medfabric.fs.model import FileStat, Volume
from medfabric.fs.namespace import MountTable, load_mounts
from medfabric.fs.paths import split_path
from medfabric.imaging import index
from medfabric.imaging.ingest.events import IngestEvent, publish
from medfabric.imaging.ingest.metadata import Placement, metadata_encoded
from medfabric.imaging.ingest.model import (
    CONFLICT,
    PATH_CONFLICT,
    UNROUTED,
    IngestItem,
    IngestOutcome,
    IngestReport,
    ParsedInstance,
    Rejection,
)
from medfabric.imaging.ingest.parse import parse_instance, with_digest
from medfabric.imaging.ingest.placement import instance_path
from medfabric.imaging.ingest.routing import Route, choose_volume, parse_routes
from medfabric.service.fabric import AccessNote
from medfabric.service.writes import NewFile

if TYPE_CHECKING:
    from medfabric.service.fabric import Fabric

SETTING_ROUTES = "medfabric.dicom.routes"
SETTING_DEFAULT_VOLUME = "medfabric.dicom.default.volume"
SETTING_POLICY = "medfabric.dicom.duplicate.policy"
SETTING_METADATA_TABLE = "medfabric.dicom.metadata.table"
POLICIES = ("reject", "keep")
DEFAULT_METADATA_TABLE = "/medical_metadata"
ATTEMPTS = 3  # rounds for items that lost a race with a concurrent ingest of the same UID


@dataclass(frozen=True)
class DicomSettings:
    """The fabric settings ingest obeys (``config save`` or ``dicom routes``)."""

    routes: tuple[Route, ...] = ()
    default_volume: str | None = None
    policy: str = "reject"
    metadata_table: str | None = DEFAULT_METADATA_TABLE

    @classmethod
    def from_settings(cls, settings: Mapping[str, str]) -> DicomSettings:
        policy = settings.get(SETTING_POLICY, "reject").strip() or "reject"
        if policy not in POLICIES:
            raise InvalidInput(f"{SETTING_POLICY} must be one of {', '.join(POLICIES)}, not {policy!r}")
        table = settings.get(SETTING_METADATA_TABLE, DEFAULT_METADATA_TABLE).strip()
        return cls(
            tuple(parse_routes(settings.get(SETTING_ROUTES))),
            settings.get(SETTING_DEFAULT_VOLUME, "").strip() or None,
            policy,
            table or None,
        )


@dataclass(frozen=True)
class _Plan:
    """One instance on its way to a volume: rides in ``NewFile.tag`` into the commit hook."""

    position: int
    item: IngestItem
    parsed: ParsedInstance
    volume: Volume
    path: str
    version: int = 1
    ingested_at: int = 0
    stale_ids: tuple[int, ...] = ()  # index rows whose files are gone, replaced by this one


@dataclass
class _Run:
    outcomes: dict[int, IngestOutcome] = field(default_factory=dict)
    events: list[IngestEvent] = field(default_factory=list)


class IngestPipeline:
    def __init__(self, fabric: Fabric, settings: DicomSettings | None = None) -> None:
        self.fabric = fabric
        self.settings = settings or DicomSettings.from_settings(fabric.settings())
        # The metadata table is an index the fabric maintains, like the index tables: whoever may write
        # the instance into its volume (checked by write_many) updates its document.
        self._indexer = fabric.acting_as(replace(fabric.principal, admin=True))

    def run(
        self, items: list[IngestItem], *, volume: str | None = None, policy: str | None = None
    ) -> IngestReport:
        """Ingest ``items``; ``volume`` overrides the routing rules, ``policy`` the duplicate policy."""
        started = time.perf_counter()
        policy = policy or self.settings.policy
        if policy not in POLICIES:
            raise InvalidInput(f"duplicate policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        run = _Run()
        with self.fabric.catalog.read() as conn:
            mounts = load_mounts(conn)
        pending: list[tuple[int, IngestItem, ParsedInstance, Volume]] = []
        identified: dict[int, ParsedInstance] = {}
        for position, item in enumerate(items):
            # the digest is always computed here, from the bytes stored: it is also their blob id
            parsed = (
                with_digest(item.parsed, item.data, always=True) if item.parsed else parse_instance(item.data)
            )
            if isinstance(parsed, Rejection):
                run.outcomes[position] = IngestOutcome(item.source, "rejected", parsed.reason, parsed.message)
                continue
            identified[position] = parsed
            target = self._route(item, parsed, volume, mounts)
            if target is None:
                run.outcomes[position] = IngestOutcome(
                    item.source,
                    "rejected",
                    UNROUTED,
                    "no routing rule matches and there is no default volume (pass -volume, or set "
                    f"{SETTING_DEFAULT_VOLUME})",
                    sop_uid=parsed.sop_instance_uid,
                )
                continue
            pending.append((position, item, parsed, target))
        for attempt in range(ATTEMPTS):
            if not pending:
                break
            pending = self._attempt(pending, policy, mounts, run, last=attempt == ATTEMPTS - 1)
        publish(self.fabric.engines.ingest_listeners, run.events)
        ordered = [
            _identify(run.outcomes[position], identified.get(position)) for position in sorted(run.outcomes)
        ]
        self._audit(ordered, mounts)
        return IngestReport(ordered, time.perf_counter() - started)

    # -- routing --

    def _route(
        self, item: IngestItem, parsed: ParsedInstance, override: str | None, mounts: MountTable
    ) -> Volume | None:
        name = item.volume or override
        if name is None:
            fields = {**parsed.fields(), "source": item.source}
            name = choose_volume(list(self.settings.routes), fields, self.settings.default_volume)
        if name is None:
            return None
        target = mounts.by_name.get(name)
        if target is None:
            raise NotFound(f"DICOM ingest: no volume named {name!r}")
        if not target.mounted or target.mount_path is None:
            raise InvalidInput(
                f"DICOM ingest: volume {name} is not mounted (`medfabric volume mount -name {name}`)"
            )
        return target

    # -- deciding, writing --

    def _attempt(
        self,
        pending: list[tuple[int, IngestItem, ParsedInstance, Volume]],
        policy: str,
        mounts: MountTable,
        run: _Run,
        *,
        last: bool,
    ) -> list[tuple[int, IngestItem, ParsedInstance, Volume]]:
        """Decide and write everything pending once; return what lost a race and must be decided again."""
        plans = self._decide(pending, policy, mounts, run)
        retry: list[tuple[int, IngestItem, ParsedInstance, Volume]] = []
        by_volume: dict[int, list[_Plan]] = defaultdict(list)
        for plan in plans:
            by_volume[plan.volume.id].append(plan)
        for group in by_volume.values():
            files = [
                NewFile(
                    plan.path,
                    plan.item.data,
                    tag=plan,
                    source=plan.item.origin,
                    digest=plan.parsed.digest,
                )
                for plan in group
            ]
            try:
                result = self.fabric.fs.write_many(files, parents=True, on_commit=self._hook)
            except (sa.exc.IntegrityError, sa.exc.OperationalError) as error:
                if not _lost_race(error):
                    raise
                if last:
                    for plan in group:
                        run.outcomes[plan.position] = _failed(
                            plan, Conflict(f"concurrent ingest: {error.orig}")
                        )
                else:
                    retry.extend((p.position, p.item, p.parsed, p.volume) for p in group)
                continue
            except MedfabricError as error:
                for plan in group:
                    run.outcomes[plan.position] = _failed(plan, error)
                continue
            for new_file, plan in zip(files, group, strict=True):
                refused = result.errors.get(new_file.path)
                if refused is None:
                    run.outcomes[plan.position] = IngestOutcome(
                        plan.item.source,
                        "stored",
                        volume=plan.volume.name,
                        path=new_file.path,
                        sop_uid=plan.parsed.sop_instance_uid,
                        version=plan.version,
                        size=len(plan.item.data),
                    )
                    run.events.append(_event(plan, new_file.path))
                elif isinstance(refused, Conflict) and not isinstance(refused, NotEmpty) and not last:
                    retry.append((plan.position, plan.item, plan.parsed, plan.volume))
                elif isinstance(refused, Conflict):
                    run.outcomes[plan.position] = IngestOutcome(
                        plan.item.source,
                        "rejected",
                        PATH_CONFLICT,
                        f"{new_file.path} is taken by a file the imaging index does not know "
                        "(`medfabric dicom reindex` indexes it)",
                        plan.volume.name,
                        new_file.path,
                        plan.parsed.sop_instance_uid,
                    )
                else:
                    run.outcomes[plan.position] = _failed(plan, refused)
        return retry

    def _decide(
        self,
        pending: list[tuple[int, IngestItem, ParsedInstance, Volume]],
        policy: str,
        mounts: MountTable,
        run: _Run,
    ) -> list[_Plan]:
        """Duplicate, conflict or new version, against the index and earlier items of the batch."""
        with self.fabric.catalog.read() as conn:
            stored = index.lookup(conn, [parsed.sop_instance_uid for _p, _i, parsed, _v in pending])
        now = self.fabric.clock.now_ms()
        plans: list[_Plan] = []
        batch: dict[str, list[tuple[bytes, int, str, str]]] = defaultdict(
            list
        )  # uid → (digest, version, path, volume)
        for position, item, parsed, target in pending:
            uid = parsed.sop_instance_uid
            rows = stored.get(uid, [])
            live = [(r.digest, r.version, r.path, _volume_name(mounts, r.volume_id)) for r in rows if r.live]
            candidates = live + batch[uid]
            same = next((c for c in candidates if c[0] == parsed.digest), None)
            if same is not None:
                run.outcomes[position] = IngestOutcome(
                    item.source, "duplicate", volume=same[3], path=same[2], sop_uid=uid, version=same[1]
                )
                continue
            if candidates and policy == "reject":
                run.outcomes[position] = IngestOutcome(
                    item.source,
                    "rejected",
                    CONFLICT,
                    f"a different object with SOPInstanceUID {uid} is stored at {candidates[0][2]} "
                    "(duplicate policy: reject)",
                    candidates[0][3],
                    candidates[0][2],
                    uid,
                )
                continue
            version = 1
            if candidates:
                version = max([c[1] for c in candidates] + [r.version for r in rows]) + 1
            path = instance_path(str(target.mount_path), parsed, version)
            resolved, _inside = mounts.resolve(split_path(path))
            if resolved.id != target.id:
                run.outcomes[position] = IngestOutcome(
                    item.source,
                    "rejected",
                    PATH_CONFLICT,
                    f"{path} lies inside volume {resolved.name}, mounted within {target.name}",
                    target.name,
                    path,
                    uid,
                )
                continue
            stale = tuple(r.id for r in rows if not r.live) if not batch[uid] else ()
            batch[uid].append((parsed.digest, version, path, target.name))
            plans.append(_Plan(position, item, parsed, target, path, version, now, stale))
        return plans

    def _hook(self, conn: Connection, written: list[tuple[NewFile, FileStat]]) -> None:
        """Inside the volume's write transaction: the index rows and metadata documents."""
        records: list[index.InstanceRecord] = []
        documents = []
        stale: list[int] = []
        for new_file, stat in written:
            plan = new_file.tag
            assert isinstance(plan, _Plan)
            stale.extend(plan.stale_ids)
            records.append(
                index.InstanceRecord(
                    plan.parsed, plan.volume.id, stat.ino, stat.path, plan.version, plan.ingested_at
                )
            )
            if self.settings.metadata_table:
                placement = Placement(plan.volume.name, stat.path, plan.version, plan.ingested_at)
                documents.append(metadata_encoded(plan.parsed, placement))
        now = self.fabric.clock.now_ms()
        if stale:
            index.refresh_counts(conn, index.delete_instances(conn, stale), now)
        index.record(conn, records, now)
        if documents and self.settings.metadata_table:
            self._indexer.tables.upsert_documents(conn, self.settings.metadata_table, documents)

    # -- audit --

    def _audit(self, outcomes: list[IngestOutcome], mounts: MountTable) -> None:
        """One access record per instance (HIPAA wants every access), whatever became of it, all of
        the batch's in one audit transaction. A stored or duplicate instance is data of its volume
        (the volume's audit settings apply); a refused one, a management event."""
        fabric = self.fabric
        if not fabric.engines.listeners:
            return
        accesses: list[tuple[AccessNote, str]] = []
        for outcome in outcomes:
            note = AccessNote(outcome.path)
            target = mounts.by_name.get(outcome.volume) if outcome.volume else None
            if target is not None and outcome.status in ("stored", "duplicate"):
                note.target(target)
            else:
                note.volume = outcome.volume
            note.sop_uid = outcome.sop_uid
            note.patient_id = outcome.patient_id
            note.study_uid = outcome.study_uid
            note.series_uid = outcome.series_uid
            note.detail = f"{outcome.status} from {outcome.source}"
            verdict = "allowed"
            if outcome.status in ("rejected", "failed"):
                error = outcome.error or InvalidInput(
                    f"{outcome.reason}: {outcome.message} (from {outcome.source})"
                )
                verdict = "denied" if isinstance(error, PermissionDenied) else "failed"
                note.detail = error.message if verdict == "denied" else f"{error.code}: {error.message}"
            accesses.append((note, verdict))
        fabric.record_accesses("dicom ingest", accesses)


def _lost_race(error: sa.exc.DBAPIError) -> bool:
    """A concurrent ingest got there first: a unique key taken, or PostgreSQL broke a deadlock or a
    serialization conflict. Deciding again settles it."""
    if isinstance(error, sa.exc.IntegrityError):
        return True
    return getattr(error.orig, "sqlstate", None) in ("40P01", "40001")


def _identify(outcome: IngestOutcome, parsed: ParsedInstance | None) -> IngestOutcome:
    if parsed is None:
        return outcome
    return replace(
        outcome,
        sop_uid=parsed.sop_instance_uid,
        patient_id=parsed.patient_id,
        study_uid=parsed.study_instance_uid,
        series_uid=parsed.series_instance_uid,
    )


def _volume_name(mounts: MountTable, volume_id: int) -> str:
    found = mounts.volumes.get(volume_id)
    return found.name if found is not None else str(volume_id)


def _failed(plan: _Plan, error: MedfabricError) -> IngestOutcome:
    return IngestOutcome(
        plan.item.source,
        "failed",
        error.code,
        error.message,
        plan.volume.name,
        None,
        plan.parsed.sop_instance_uid,
        error=error,
    )


def _event(plan: _Plan, path: str) -> IngestEvent:
    parsed = plan.parsed
    return IngestEvent(
        volume=plan.volume.name,
        path=path,
        patient_id=parsed.patient_id,
        study_uid=parsed.study_instance_uid,
        series_uid=parsed.series_instance_uid,
        sop_uid=parsed.sop_instance_uid,
        modality=parsed.modality,
        size=parsed.size,
        ingested_at=plan.ingested_at,
        version=plan.version,
        source=plan.item.source,
    )
