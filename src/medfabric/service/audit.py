"""Auditing: which accesses are recorded, writing them as they happen, verifying and querying them.

Data accesses are recorded for volumes with auditing on (`audit data -enabled true -volume V`),
management operations when cluster auditing is on (`audit cluster -enabled true`), both only while
`mfs.enable.audit.log` is "1". A record is durable before the operation's result is returned; if it
cannot be written, the operation fails rather than go unrecorded.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.audit import log
from medfabric.audit.chain import AuditRecord, VerifyResult, verify_chain
from medfabric.audit.fhir import to_bundle
from medfabric.catalog.schema import audit_log, config_values, meta
from medfabric.errors import InvalidInput
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
AUDIT_KEY_FILE = "keys/audit.key"


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

    Group commit: concurrent operations' records share one transaction (one fsync); each caller
    returns only once a transaction holding its record has committed.
    """

    def __init__(self, engines: Engines) -> None:
        self.engines = engines
        self._key: bytes | None = None
        self._queue: list[tuple[dict[str, object], bool, _Ticket]] = []
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self.durable = _durability(engines) != "process"

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = read_secret(self.engines.config.home / AUDIT_KEY_FILE, "audit key")
        return self._key

    def __call__(self, event: AccessEvent) -> None:
        self.record_many([event])

    def record_many(self, events: Sequence[AccessEvent]) -> None:
        """Record ``events`` (those their volume's audit settings select) durably, in one transaction
        with whatever other threads are recording; raises if they could not be written."""
        ticket = _Ticket()
        queued = [(fields, is_data, ticket) for fields, is_data in map(_fields, events) if fields]
        if not queued:
            return
        with self._queue_lock:
            self._queue.extend(queued)
        with self._commit_lock:
            if not ticket.done:
                self._commit()
        if ticket.error is not None:
            raise ticket.error

    def _commit(self) -> None:
        with self._queue_lock:
            batch, self._queue = self._queue, []
        if not batch:
            return
        try:
            key = self.key
            if not any(is_data for _f, is_data, _t in batch):
                # management events only: recorded when cluster auditing is on, which is rare, so
                # look before opening a write transaction (and an fsync) for nothing
                with self.engines.catalog.read() as conn:
                    master, cluster = _flags(conn)
                if not (master and cluster):
                    _batch_done(batch, None)
                    return
            with self.engines.catalog.write(durable=self.durable) as conn:
                master, cluster = _flags(conn)
                wanted = [fields for fields, is_data, _t in batch if master and (is_data or cluster)]
                head = log.append_many(conn, wanted, key=key)
            if head is not None:
                log.write_anchor(self.engines.config.home / ANCHOR_FILE, head)
        except Exception as error:  # noqa: BLE001 - every waiter must hear of it, whatever it is
            _batch_done(batch, error)
            return
        _batch_done(batch, None)


def _batch_done(batch: list[tuple[dict[str, object], bool, _Ticket]], error: Exception | None) -> None:
    for _fields, _is_data, ticket in batch:
        ticket.error = error
        ticket.done = True


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


class _Ticket:
    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = False
        self.error: Exception | None = None


def _durability(engines: Engines) -> str:
    """``mfs.audit.durability``: "commit" (default: every record fsync'd before the operation
    returns) or "process" (records survive a crash of the process, not of the machine)."""
    with engines.catalog.read() as conn:
        value = conn.execute(
            sa.select(config_values.c.value).where(config_values.c.key == DURABILITY)
        ).scalar()
    return str(value or "commit")


def _flags(conn: Connection) -> tuple[bool, bool]:
    """(the master switch, cluster auditing), in one statement straight to the driver: this runs
    for every audited access."""
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(
            f"SELECT key, value FROM {config_values.name} WHERE key = {mark} "
            f"UNION ALL SELECT key, value FROM {meta.name} WHERE key = {mark}",
            (MASTER_SWITCH, CLUSTER_FLAG),
        )
        found = {str(key): str(value) for key, value in cursor.fetchall()}
    finally:
        cursor.close()
    return found.get(MASTER_SWITCH) == "1", found.get(CLUSTER_FLAG) == "1"


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
        fabric = self.fabric
        with fabric.access("audit data", volume=volume) as note:
            note.detail = f"enabled={int(enabled)} ops={ops or ''}"
            with fabric.catalog.write() as conn:
                found = volume_rows.get_volume(conn, volume)
                require_volume(fabric.principal, found, "a", "change auditing")
                values: dict[str, Any] = {"audited": enabled}
                if ops is not None:
                    for item in (part.strip() for part in ops.split(",") if part.strip()):
                        if item[0] not in "+-" or len(item) < 2:
                            raise InvalidInput(f"-dataauditops takes +op or -op items, not {item!r}")
                    values["audit_ops"] = ops
                volume_rows.update_volume(conn, found.id, **values)
                return volume_rows.get_volume_by_id(conn, found.id)

    def verify(self) -> AuditCheck:
        fabric = self.fabric
        with fabric.access("audit verify"):
            self._require_auditor("verify the audit log")
            writer = AuditWriter(fabric.engines)
            anchor = log.read_anchor(fabric.config.home / ANCHOR_FILE)
            mismatched: builtins.list[int] = []
            with fabric.catalog.read() as conn:
                stored = builtins.list(log.stored_records(conn))
            for item in stored:
                if not item.columns_match:
                    mismatched.append(item.record.seq)
            result = verify_chain(
                ((item.record, item.stored_hash) for item in stored), anchor, key=writer.key
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
            with fabric.catalog.read() as conn:
                return [item.record for item in log.stored_records(conn, query)]

    def export_fhir(self, **filters: Any) -> dict[str, Any]:
        """FHIR R4 AuditEvents (IHE BALP), as a collection Bundle."""
        return to_bundle(self.query(**filters), fabric=self.fabric.name)
