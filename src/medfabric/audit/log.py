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
_COLUMNS = (
    "seq",
    "time_us",
    "principal",
    "interface",
    "operation",
    "outcome",
    "volume",
    "path",
    "patient_id",
    "record",
    "chain_hash",
)


def _head(conn: Connection) -> Anchor:
    row = conn.execute(_HEAD).first()
    return Anchor(int(row.seq), bytes(row.chain_hash)) if row is not None else GENESIS


def append_many(conn: Connection, batch: list[dict[str, object]], *, key: bytes) -> Anchor | None:
    """Chain and store records (``batch`` holds AuditRecord fields without seq) in the caller's
    write transaction; returns the new head (None if ``batch`` is empty).

    This runs once per audited access, so it speaks to the driver directly: two statements, no SQL
    compilation (the audit of a small read must cost much less than the read)."""
    if not batch:
        return None
    postgres = conn.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if postgres:
            cursor.execute("SELECT pg_advisory_xact_lock(727172001)")  # one appender at a time
        cursor.execute("SELECT seq, chain_hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        found = cursor.fetchone()
        head = Anchor(int(found[0]), bytes(found[1])) if found is not None else GENESIS
        rows = []
        for fields in batch:
            record = AuditRecord(seq=head.seq + 1, **fields)  # type: ignore[arg-type]
            canonical = record.canonical_bytes()
            link = chain_hash(head.head_hash, record, key=key, canonical=canonical)
            rows.append(
                (
                    record.seq,
                    record.time_us,
                    record.principal,
                    record.interface.value,
                    record.operation,
                    record.outcome.value,
                    record.volume,
                    record.path,
                    record.patient_id,
                    canonical,
                    link,
                )
            )
            head = Anchor(record.seq, link)
        cursor.executemany(
            f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) VALUES ({', '.join([mark] * len(_COLUMNS))})",
            rows,
        )
    finally:
        cursor.close()
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
