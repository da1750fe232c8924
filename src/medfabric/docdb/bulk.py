"""Fast bulk loading of documents: executemany on SQLite, COPY on PostgreSQL.

Responsible for loading a million documents in seconds inside the caller's transaction; it never
commits, and on a duplicate ``_id`` it raises Conflict and leaves rolling back to the caller.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from medfabric.docdb.documents import EncodedDocument, encode
from medfabric.errors import Conflict

SQLITE_BATCH = 5000


def load_sqlite(
    conn: sa.Connection, table: str, documents: Iterable[Mapping[str, Any] | EncodedDocument], replace: bool
) -> int:
    on_conflict = "DO UPDATE SET doc = excluded.doc" if replace else "DO NOTHING"
    sql = f"INSERT INTO {table} (_id, doc) VALUES (?, ?) ON CONFLICT (_id) {on_conflict}"
    total = 0
    iterator = iter(documents)
    while batch := [
        encode(document, generate_id=True) for document in itertools.islice(iterator, SQLITE_BATCH)
    ]:
        written = conn.exec_driver_sql(sql, batch).rowcount
        if not replace and written != len(batch):
            raise Conflict(
                f"{len(batch) - written} of the documents have an _id that already exists in {table} "
                f"(or appears twice); roll the transaction back"
            )
        total += len(batch)
    return total


def load_postgres(
    conn: sa.Connection, table: str, documents: Iterable[Mapping[str, Any] | EncodedDocument], replace: bool
) -> int:
    import psycopg

    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    total = 0
    with raw.cursor() as cursor:
        target = table
        if replace:
            # COPY cannot upsert: stage the rows, then merge them, the last of equal _ids winning
            target = f"{table}_load"
            cursor.execute(
                f'CREATE TEMPORARY TABLE {target} (seq bigint, _id text COLLATE "C", doc jsonb) '
                f"ON COMMIT DROP"
            )
        columns = "(seq, _id, doc)" if replace else "(_id, doc)"
        try:
            with cursor.copy(f"COPY {target} {columns} FROM STDIN") as copy:
                for document in documents:
                    doc_id, body = encode(document, generate_id=True)
                    copy.write_row((total, doc_id, body) if replace else (doc_id, body))
                    total += 1
        except psycopg.errors.UniqueViolation as error:
            raise Conflict(
                f"a document's _id already exists in {table} (or appears twice): "
                f"{error.diag.message_detail}; roll the transaction back"
            ) from None
        if replace:
            cursor.execute(
                f"INSERT INTO {table} (_id, doc) SELECT DISTINCT ON (_id) _id, doc FROM {target} "
                f"ORDER BY _id, seq DESC ON CONFLICT (_id) DO UPDATE SET doc = EXCLUDED.doc"
            )
            cursor.execute(f"DROP TABLE {target}")
    return total
