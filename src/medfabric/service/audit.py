"""Auditing: which accesses are recorded, writing them as they happen, verifying and querying them.

Data accesses are recorded for volumes with auditing on (`audit data -enabled true -volume V`),
management operations when cluster auditing is on (`audit cluster -enabled true`), both only while
`mfs.enable.audit.log` is "1". A record is durable before the operation's result is returned; if it
cannot be written, the operation fails rather than go unrecorded.
"""

from __future__ import annotations

import builtins
import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric import alarms as alarm_rows
from medfabric.audit import journal, log
from medfabric.audit.chain import AuditRecord, VerifyResult, verify_chain
from medfabric.audit.fhir import to_bundle
from medfabric.catalog.schema import audit_log, config_values, meta
from medfabric.errors import InvalidInput, Unavailable
from medfabric.fs import volumes as volume_rows
from medfabric.fs.model import Volume
from medfabric.security.keys import read_secret
from medfabric.service.access import require_cluster, require_volume

if TYPE_CHECKING:
    from medfabric.service.fabric import AccessEvent, Engines, Fabric

MASTER_SWITCH = "mfs.enable.audit.log"
DURABILITY = "mfs.audit.durability"
CLUSTER_FLAG = "audit.cluster"
ANCHOR_FILE = "audit.anchor"
JOURNAL_DIR = "audit-journal"
JOURNAL_MARK = "audit.journal."  # + a journal's name: how far the log holds it
AUDIT_KEY_FILE = "keys/audit.key"
MAX_COALESCE_MINUTES = 24 * 60
COALESCED_OPERATIONS = frozenset({"read", "write", "getattr"})  # MapR's -coalesce applies to these
COALESCE_MEMORY = 100_000  # (file, principal, client, operation) keys remembered per process


def selected(audit_ops: str, operation: str) -> bool:
    """MapR's -dataauditops: everything by default; "-op" leaves an operation out, "+op" puts it back."""
    verdict = True
    for item in (part.strip() for part in audit_ops.split(",") if part.strip()):
        name = item.lstrip("+-")
        if name in (operation, "all"):
            verdict = not item.startswith("-")
    return verdict


class AuditWriter:
    """The access listener that writes audit records, one per fabric process.

    A record is durable in this process's journal (``medfabric.audit.journal``) before the access
    returns: concurrent accesses share one ``fdatasync`` (group commit). A background thread moves
    journaled records into the chained log in the catalog every ``DRAIN_SECONDS`` (one transaction
    for all of them, with the journal's mark); readers of the log call ``flush`` first. With
    ``mfs.audit.durability`` "process" the journal is written but not synced: records survive a
    crash of the process, not of the machine.
    """

    DRAIN_SECONDS = 0.05
    ROTATE_BYTES = 64 * 1024 * 1024

    def __init__(self, engines: Engines, *, background: bool = True) -> None:
        self.engines = engines
        self.directory = engines.config.home / JOURNAL_DIR
        with engines.catalog.read() as conn:
            self.durable = _flags(conn)[2]  # kept current by every batch moved into the log
        self._key: bytes | None = None
        self._journal: journal.Journal | None = None
        self._retired: list[journal.Journal] = []  # rotated out: removed once drained
        self._lock = threading.Lock()  # the journal: appends, rotation
        self._sync_lock = threading.Lock()  # one fdatasync at a time; later waiters ride along
        self._synced = 0  # (journal generation, offset) encoded as an int: see _position
        self._generation = 0
        self._pending: list[tuple[str, int, dict[str, object], bool]] = []  # journal, end, fields, data?
        self._drain_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._drain_seconds = self.DRAIN_SECONDS if background else None
        self._thread: threading.Thread | None = None
        self._recent: OrderedDict[tuple[object, ...], int] = OrderedDict()  # coalescing: key → time_us
        self.recovered = self._recover()

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = audit_key(self.engines)
        return self._key

    def __call__(self, event: AccessEvent) -> None:
        self.record_many([event])

    def record_many(self, events: Sequence[AccessEvent]) -> None:
        """Record ``events`` (those the audit settings select); durable when this returns. Raises if
        they could not be written: the operation then fails rather than go unrecorded."""
        wanted = [
            (fields, is_data)
            for event in events
            for fields, is_data in (_fields(event),)
            if fields and not self._coalesced(event, fields)
        ]
        if not wanted:
            return
        if not any(is_data for _f, is_data in wanted):
            # management events only: recorded when cluster auditing is on, which is rare, so look
            # before writing (and syncing) anything
            with self.engines.catalog.read() as conn:
                master, cluster, _durable = _flags(conn)
            if not (master and cluster):
                return
        key = self.key
        with self._lock:
            if self._closed:
                raise Unavailable("the audit trail is closed")
            target = self._journal
            if target is None or target.end >= self.ROTATE_BYTES:
                if target is not None:
                    self._retired.append(target)
                target = self._journal = journal.Journal(self.directory, key)
                self._generation += 1
            for fields, is_data in wanted:
                end = target.append(fields)
                self._pending.append((target.name, end, fields, is_data))
            position = self._position(end)
        if self.durable:
            self._sync(position)
        self._start()

    def _coalesced(self, event: AccessEvent, fields: dict[str, object]) -> bool:
        """True when an equal access was recorded less than the volume's coalesce interval ago (the
        first of a run of repeated reads is recorded, then one per interval)."""
        volume = event.audited_volume
        if (
            volume is None
            or volume.audit_coalesce <= 0
            or fields["outcome"] != "allowed"
            or event.outcome == "failed"
            or event.operation not in COALESCED_OPERATIONS
        ):
            return False
        key = (volume.id, event.path, event.principal, event.client, event.operation)
        now = int(str(fields["time_us"]))
        with self._lock:
            last = self._recent.get(key)
            if last is not None and now - last < volume.audit_coalesce * 60_000_000:
                return True
            self._recent[key] = now
            self._recent.move_to_end(key)
            if len(self._recent) > COALESCE_MEMORY:
                self._recent.popitem(last=False)
        return False

    def _position(self, end: int) -> int:
        return (self._generation << 48) | end

    def _sync(self, position: int) -> None:
        with self._sync_lock:
            if self._synced >= position:
                return  # another thread's fdatasync covered this record
            with self._lock:
                target, now = self._journal, self._position(self._journal.end if self._journal else 0)
                retired = list(self._retired)
            for old in retired:
                old.sync()
            if target is not None:
                target.sync()
            self._synced = now

    # -- into the chained log --

    def _start(self) -> None:
        if self._thread is None and self._drain_seconds is not None:
            with self._lock:
                if self._thread is None and not self._closed:
                    self._thread = threading.Thread(target=self._run, name="medfabric-audit", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        assert self._drain_seconds is not None
        while not self._closed:
            self._wake.wait(self._drain_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception as error:  # noqa: BLE001 - the records stay journaled; the next round retries
                _raise_alarm(self.engines, f"cannot move audit records into the log: {error}")

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """No record is moved into the log meanwhile: the writer's thread is out of the catalog."""
        with self._drain_lock:
            yield

    def flush(self) -> None:
        """Move every record journaled so far into the chained log (readers of the log call this)."""
        with self._drain_lock:
            with self._lock:
                batch, self._pending = self._pending, []
                retired = list(self._retired)  # no longer appended to: all their records are in batch
            if not batch and not retired:
                return
            try:
                if batch:
                    self._append(batch)
            except BaseException:
                with self._lock:
                    self._pending[:0] = batch
                raise
            with self._sync_lock:  # not while a sync may still be flushing it
                for old in retired:
                    with self._lock:
                        self._retired.remove(old)
                    old.close(remove=True)
            for old in retired:
                _forget_mark(self.engines, old.name)

    def _append(self, batch: list[tuple[str, int, dict[str, object], bool]]) -> None:
        marks: dict[str, int] = {}
        for name, end, _fields, _is_data in batch:
            marks[name] = max(marks.get(name, 0), end)
        with self.engines.catalog.write() as conn:
            master, cluster, self.durable = _flags(conn)  # a change of durability applies from here
            wanted = [fields for _n, _e, fields, is_data in batch if master and (is_data or cluster)]
            head = log.append_many(conn, wanted, key=self.key)
            for name, end in marks.items():
                _set_mark(conn, name, end)
        if head is not None:
            log.write_anchor(self.engines.config.home / ANCHOR_FILE, head)

    def close(self) -> None:
        """Drain what is journaled and stop; the journal file goes once the log holds it all."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - left journaled: the next process to open the fabric replays it
            for held in [*self._retired, *([self._journal] if self._journal else [])]:
                held.close(remove=False)
            return
        for held in [*self._retired, *([self._journal] if self._journal else [])]:
            held.close(remove=True)
            _forget_mark(self.engines, held.name)
        self._retired, self._journal = [], None

    # -- after a crash --

    def _recover(self) -> int:
        """Replay the journals whose writers died into the log; returns how many records it added."""
        added = 0
        for path in journal.journals(self.directory):
            with journal.orphan(path) as orphaned:
                if not orphaned:
                    continue
                name = path.name.removesuffix(journal.SUFFIX)
                with self.engines.catalog.read() as conn:
                    start = _mark(conn, name)
                try:
                    key = self.key
                except Unavailable as error:
                    _raise_alarm(self.engines, f"audit journal {path.name} not replayed: {error.message}")
                    continue
                result = journal.read_frames(path, key, 0)
                frames = [frame for frame in result.frames if frame.offset >= start]
                if result.damaged:
                    _raise_alarm(
                        self.engines,
                        f"audit journal {path.name} is damaged after offset {result.end}: "
                        "a torn write, or tampering",
                    )
                if frames:
                    self._append([(name, frame.end, frame.fields, True) for frame in frames])
                    added += len(frames)
                path.unlink()
                _forget_mark(self.engines, name)
        return added


def audit_key(engines: Engines) -> bytes:
    return read_secret(engines.config.home / AUDIT_KEY_FILE, "audit key")


def writer_of(engines: Engines) -> AuditWriter | None:
    return next((item for item in engines.listeners if isinstance(item, AuditWriter)), None)


def flush_audit(engines: Engines) -> None:
    """Records journaled by this process reach the log before it is read."""
    writer = writer_of(engines)
    if writer is not None:
        writer.flush()


def _mark_key(name: str) -> str:
    return f"{JOURNAL_MARK}{name}"


def _mark(conn: Connection, name: str) -> int:
    value = conn.execute(sa.select(meta.c.value).where(meta.c.key == _mark_key(name))).scalar()
    return int(value) if value is not None else 0


def _set_mark(conn: Connection, name: str, end: int) -> None:
    conn.execute(meta.delete().where(meta.c.key == _mark_key(name)))
    conn.execute(meta.insert().values(key=_mark_key(name), value=str(end)))


def _forget_mark(engines: Engines, name: str) -> None:
    with engines.catalog.write() as conn:
        conn.execute(meta.delete().where(meta.c.key == _mark_key(name)))


def _raise_alarm(engines: Engines, message: str) -> None:
    with contextlib.suppress(Exception), engines.catalog.write() as conn:
        alarm_rows.raise_alarm(conn, alarm_rows.AUDIT_JOURNAL, "audit", message, engines.clock.now_ms())


def _fields(event: AccessEvent) -> tuple[dict[str, object] | None, bool]:
    """The record's columns (None: the volume's audit settings leave the event out), and whether it
    is a data access (else a management operation, recorded when cluster auditing is on)."""
    volume = event.audited_volume
    if volume is not None and (not volume.audited or not selected(volume.audit_ops, event.operation)):
        return None, True
    outcome = "denied" if event.outcome == "denied" else "allowed"
    detail = f"failed: {event.detail}" if event.outcome == "failed" else (event.detail or None)
    fields: dict[str, object] = {
        "time_us": event.time_us if event.time_us is not None else event.time_ms * 1000,
        "principal": event.principal,
        "client_address": event.client,
        "interface": event.interface,
        "operation": event.operation,
        "outcome": outcome,
        "volume": event.volume,
        "path": event.path,
        "file_id": event.file_id,
        "patient_id": event.patient_id,
        "study_instance_uid": event.study_uid,
        "series_instance_uid": event.series_uid,
        "sop_instance_uid": event.sop_uid,
        "detail": detail,
    }
    return fields, volume is not None


def _flags(conn: Connection) -> tuple[bool, bool, bool]:
    """(the master switch, cluster auditing, durability "commit"), in one statement straight to the
    driver: this runs for every batch of records."""
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(
            f"SELECT key, value FROM {config_values.name} WHERE key IN ({mark}, {mark}) "
            f"UNION ALL SELECT key, value FROM {meta.name} WHERE key = {mark}",
            (MASTER_SWITCH, DURABILITY, CLUSTER_FLAG),
        )
        found = {str(key): str(value) for key, value in cursor.fetchall()}
    finally:
        cursor.close()
    return (
        found.get(MASTER_SWITCH) == "1",
        found.get(CLUSTER_FLAG) == "1",
        found.get(DURABILITY, "commit") != "process",
    )


@dataclass(frozen=True)
class AuditCheck:
    result: VerifyResult
    mismatched_columns: tuple[int, ...]  # seqs whose query columns disagree with the hashed record

    @property
    def ok(self) -> bool:
        return self.result.ok and not self.mismatched_columns

    def as_json(self) -> dict[str, Any]:
        result = self.result
        return {
            "ok": self.ok,
            "records": result.records_checked,
            "head": result.head.seq,
            "firstBadSeq": result.first_bad_seq
            if not result.ok
            else (self.mismatched_columns[0] if self.mismatched_columns else None),
            "failure": str(result.failure)
            if result.failure
            else ("column_mismatch" if self.mismatched_columns else None),
            "reason": result.reason
            or (
                f"query columns of seq {self.mismatched_columns[0]} were changed"
                if self.mismatched_columns
                else None
            ),
        }


class AuditService:
    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric

    def _require_auditor(self, action: str) -> None:
        require_cluster(self.fabric.principal, self.fabric.cluster_acl(), "a", action)

    def cluster(self, enabled: bool) -> None:
        fabric = self.fabric
        with fabric.access("audit cluster") as note:
            note.detail = f"enabled={int(enabled)}"
            self._require_auditor("change auditing")
            with fabric.catalog.write() as conn:
                conn.execute(meta.delete().where(meta.c.key == CLUSTER_FLAG))
                conn.execute(meta.insert().values(key=CLUSTER_FLAG, value="1" if enabled else "0"))

    def data(self, volume: str, enabled: bool, ops: str | None = None, coalesce: int | None = None) -> Volume:
        """Audit ``volume``'s data accesses (or stop). ``ops``: MapR's -dataauditops. ``coalesce``:
        minutes during which repeated allowed reads, writes and getattrs of one file by one principal
        from one client are recorded once (0, the default: every access; denials always are)."""
        fabric = self.fabric
        if coalesce is not None and not 0 <= coalesce <= MAX_COALESCE_MINUTES:
            raise InvalidInput(f"-coalesce is in minutes, 0 to {MAX_COALESCE_MINUTES}, not {coalesce}")
        with fabric.access("audit data", volume=volume) as note:
            note.detail = f"enabled={int(enabled)} ops={ops or ''} coalesce={coalesce}"
            with fabric.catalog.write() as conn:
                found = volume_rows.get_volume(conn, volume)
                require_volume(fabric.principal, found, "a", "change auditing")
                values: dict[str, Any] = {"audited": enabled}
                if ops is not None:
                    for item in (part.strip() for part in ops.split(",") if part.strip()):
                        if item[0] not in "+-" or len(item) < 2:
                            raise InvalidInput(f"-dataauditops takes +op or -op items, not {item!r}")
                    values["audit_ops"] = ops
                if coalesce is not None:
                    values["audit_coalesce"] = coalesce
                volume_rows.update_volume(conn, found.id, **values)
                return volume_rows.get_volume_by_id(conn, found.id)

    def verify(self) -> AuditCheck:
        fabric = self.fabric
        with fabric.access("audit verify"):
            self._require_auditor("verify the audit log")
            flush_audit(fabric.engines)
            anchor = log.read_anchor(fabric.config.home / ANCHOR_FILE)
            mismatched: builtins.list[int] = []
            with fabric.catalog.read() as conn:
                stored = builtins.list(log.stored_records(conn))
            for item in stored:
                if not item.columns_match:
                    mismatched.append(item.record.seq)
            result = verify_chain(
                ((item.record, item.stored_hash) for item in stored), anchor, key=audit_key(fabric.engines)
            )
            return AuditCheck(result, tuple(mismatched))

    def query(
        self,
        *,
        user: str | None = None,
        volume: str | None = None,
        path: str | None = None,
        patient: str | None = None,
        operation: str | None = None,
        outcome: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        limit: int | None = None,
    ) -> builtins.list[AuditRecord]:
        fabric = self.fabric
        with fabric.access("audit query"):
            self._require_auditor("read the audit log")
            query = sa.select(audit_log).order_by(audit_log.c.seq)
            conditions = [
                (user, audit_log.c.principal),
                (volume, audit_log.c.volume),
                (patient, audit_log.c.patient_id),
                (operation, audit_log.c.operation),
                (outcome, audit_log.c.outcome),
            ]
            for value, column in conditions:
                if value is not None:
                    query = query.where(column == value)
            if path is not None:
                query = query.where(
                    sa.or_(
                        audit_log.c.path == path,
                        audit_log.c.path.like(
                            path.rstrip("/").replace("%", r"\%").replace("_", r"\_") + "/%", escape="\\"
                        ),
                    )
                )
            if since_us is not None:
                query = query.where(audit_log.c.time_us >= since_us)
            if until_us is not None:
                query = query.where(audit_log.c.time_us < until_us)
            if limit is not None:
                query = query.limit(limit)
            flush_audit(fabric.engines)
            with fabric.catalog.read() as conn:
                return [item.record for item in log.stored_records(conn, query)]

    def export_fhir(self, **filters: Any) -> dict[str, Any]:
        """FHIR R4 AuditEvents (IHE BALP), as a collection Bundle."""
        return to_bundle(self.query(**filters), fabric=self.fabric.name)
