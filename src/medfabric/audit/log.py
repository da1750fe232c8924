"""The audit log in the catalog: appending chained records and reading them back.

Appends run in a write transaction of their own (the service groups concurrent ones) and are
durable when it commits. The chain's head is also written outside the log (the anchor file) so
that a truncated log is detected.
Nothing here decides what to audit (the service does) and nothing ever rewrites a record.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.audit.chain import GENESIS, Anchor, AuditRecord, chain_hash
from medfabric.catalog.schema import audit_log


@dataclass(frozen=True)
class StoredRecord:
    record: AuditRecord
    stored_hash: bytes
    columns_match: bool  # the query columns agree with the hashed record


_HEAD = sa.select(audit_log.c.seq, audit_log.c.chain_hash).order_by(audit_log.c.seq.desc()).limit(1)
_INSERT = audit_log.insert()


def _head(conn: Connection) -> Anchor:
    row = conn.execute(_HEAD).first()
    return Anchor(int(row.seq), bytes(row.chain_hash)) if row is not None else GENESIS


def append_many(conn: Connection, batch: list[dict[str, object]], *, key: bytes) -> Anchor | None:
    """Chain and store records (``batch`` holds AuditRecord fields without seq) in the caller's
    write transaction; returns the new head (None if ``batch`` is empty)."""
    if not batch:
        return None
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(727172001)"))  # one appender at a time
    head = _head(conn)
    rows = []
    for fields in batch:
        record = AuditRecord(seq=head.seq + 1, **fields)  # type: ignore[arg-type]
        link = chain_hash(head.head_hash, record, key=key)
        rows.append(
            {
                "seq": record.seq,
                "time_us": record.time_us,
                "principal": record.principal,
                "interface": record.interface.value,
                "operation": record.operation,
                "outcome": record.outcome.value,
                "volume": record.volume,
                "path": record.path,
                "patient_id": record.patient_id,
                "record": record.canonical_bytes(),
                "chain_hash": link,
            }
        )
        head = Anchor(record.seq, link)
    conn.execute(_INSERT, rows)
    return head


ANCHOR_SIZE = 512  # one sector: rewritten in place by a single write


def write_anchor(path: Path, anchor: Anchor) -> None:
    """Rewrite the anchor in place (one sector, one write). It may lag the log after a crash: that
    is not tampering, the records after it are still chain-checked."""
    text = anchor.to_json().encode()
    if len(text) > ANCHOR_SIZE:
        raise ValueError("anchor too large")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, text.ljust(ANCHOR_SIZE), 0)
    finally:
        os.close(fd)


def read_anchor(path: Path) -> Anchor | None:
    with contextlib.suppress(FileNotFoundError):
        return Anchor.from_json(path.read_text().rstrip())
    return None


def stored_records(
    conn: Connection, query: sa.Select[tuple[object, ...]] | None = None
) -> Iterator[StoredRecord]:
    """Records in seq order (all, or those ``query`` selects), decoded from their hashed bytes."""
    select = query if query is not None else sa.select(audit_log).order_by(audit_log.c.seq)
    for row in conn.execute(select):
        record = AuditRecord.from_canonical(bytes(row.record))
        matches = (
            row.seq == record.seq
            and row.principal == record.principal
            and row.operation == record.operation
            and row.outcome == record.outcome.value
            and row.volume == record.volume
            and row.path == record.path
            and row.patient_id == record.patient_id
            and row.time_us == record.time_us
        )
        yield StoredRecord(record, bytes(row.chain_hash), matches)
