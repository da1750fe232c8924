"""DocumentTable: one MapR-DB-style JSON table in the catalog database, used through the caller's connection.

Responsible for the table's rows, its secondary indexes and for running translated queries in the
database. It never commits or rolls back (the caller owns the transaction, so a document can change
together with other catalog rows) and never filters, sorts or counts documents in Python.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from medfabric.docdb import bulk
from medfabric.docdb.conditions import parse_condition
from medfabric.docdb.documents import EncodedDocument, check_id, decode, encode, encode_body
from medfabric.docdb.indexes import (
    IndexInfo,
    array_index_ddl,
    array_prefixes,
    check_index_name,
    drop_array_index_ddl,
    index_ddl,
    parse_index_fields,
)
from medfabric.docdb.mutations import apply_mutation, parse_mutation
from medfabric.docdb.paths import FieldPath
from medfabric.docdb.postgres_sql import PostgresDialect
from medfabric.docdb.results import assemble, parse_order_by, parse_select, projection_trie
from medfabric.docdb.sqlbase import Dialect, IdRef, Ref, SqlContext
from medfabric.docdb.sqlite_sql import SQL_FUNCTIONS, SqliteDialect
from medfabric.docdb.translate import Translator
from medfabric.errors import Conflict, InvalidInput, NotFound

_DIALECTS: dict[str, Dialect] = {"sqlite": SqliteDialect(), "postgresql": PostgresDialect()}
Document = dict[str, Any]
JIT_SUBQUERY_DEPTH = 2


class DocumentTable:
    """The JSON table ``doc_<table_id>``; see the package docstring for the storage layout."""

    def __init__(self, table_id: int) -> None:
        if isinstance(table_id, bool) or not isinstance(table_id, int) or table_id < 0:
            raise InvalidInput(f"a table id is a non-negative integer, not {table_id!r}")
        self.table_id = table_id
        self.name = f"doc_{table_id}"
        self.index_table = f"doc_{table_id}_ix"

    def __repr__(self) -> str:
        return f"DocumentTable({self.table_id})"

    # --- lifecycle ---
    def exists(self, conn: sa.Connection) -> bool:
        dialect = _dialect(conn)
        if dialect.name == "sqlite":
            sql = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = :p0"
        else:
            sql = (
                "SELECT count(*) FROM pg_catalog.pg_tables "
                "WHERE tablename = %(p0)s AND schemaname = current_schema()"
            )
        return bool(conn.exec_driver_sql(sql, {"p0": self.name}).scalar())

    def create(self, conn: sa.Connection) -> None:
        if self.exists(conn):
            raise Conflict(f"JSON table {self.name} already exists")
        if _dialect(conn).name == "sqlite":
            body = "_id TEXT NOT NULL PRIMARY KEY, doc TEXT NOT NULL"
        else:
            body = '_id TEXT COLLATE "C" NOT NULL PRIMARY KEY, doc JSONB NOT NULL'
        conn.exec_driver_sql(f"CREATE TABLE {self.name} ({body})")
        conn.exec_driver_sql(
            f"CREATE TABLE {self.index_table} (name TEXT NOT NULL PRIMARY KEY, fields TEXT NOT NULL)"
        )

    def drop(self, conn: sa.Connection) -> None:
        if not self.exists(conn):
            raise NotFound(f"JSON table {self.name} does not exist")
        conn.exec_driver_sql(f"DROP TABLE {self.name}")
        conn.exec_driver_sql(f"DROP TABLE {self.index_table}")

    def analyze(self, conn: sa.Connection) -> None:
        """Refresh the planner's statistics (worth doing after a bulk load)."""
        conn.exec_driver_sql(f"ANALYZE {self.name}")

    # --- writes ---
    def insert(self, conn: sa.Connection, document: Mapping[str, Any]) -> str:
        """Insert a new document and return its ``_id`` (a UUID is generated when it has none)."""
        doc_id, body = encode(document, generate_id=True)
        if self._write(conn, doc_id, body, "DO NOTHING") == 0:
            raise Conflict(f"a document with _id {doc_id!r} already exists in {self.name}")
        return doc_id

    def insert_or_replace(self, conn: sa.Connection, document: Mapping[str, Any]) -> str:
        doc_id, body = encode(document, generate_id=True)
        self._write(conn, doc_id, body, "DO UPDATE SET doc = excluded.doc")
        return doc_id

    def insert_many(
        self,
        conn: sa.Connection,
        documents: Iterable[Mapping[str, Any] | EncodedDocument],
        *,
        replace: bool = False,
    ) -> int:
        """Bulk-load documents; returns how many were written. On any error, roll the transaction back."""
        if _dialect(conn).name == "sqlite":
            return bulk.load_sqlite(conn, self.name, documents, replace)
        return bulk.load_postgres(conn, self.name, documents, replace)

    def replace(self, conn: sa.Connection, document: Mapping[str, Any]) -> None:
        doc_id, body = encode(document, generate_id=False)
        dialect = _dialect(conn)
        ctx = SqlContext(dialect.placeholder)
        sql = f"UPDATE {self.name} SET doc = {_json_param(dialect, ctx, body)} WHERE _id = {ctx.bind(doc_id)}"
        if conn.exec_driver_sql(sql, ctx.params).rowcount == 0:
            raise NotFound(f"no document with _id {doc_id!r} in {self.name}")

    def update(
        self, conn: sa.Connection, doc_id: str, mutation: Mapping[str, Any], *, upsert: bool = False
    ) -> Document:
        """Apply an OJAI mutation atomically and return the new document.

        A missing document raises NotFound, unless ``upsert``: then the mutation applies to ``{}``."""
        check_id(doc_id)
        operations = parse_mutation(mutation)
        dialect = _dialect(conn)
        ctx = SqlContext(dialect.placeholder)
        lock = " FOR UPDATE" if dialect.name == "postgresql" else ""
        row = conn.exec_driver_sql(
            f"SELECT doc FROM {self.name} WHERE _id = {ctx.bind(doc_id)}{lock}", ctx.params
        ).first()
        if row is None and not upsert:
            raise NotFound(f"no document with _id {doc_id!r} in {self.name}")
        current = decode(doc_id, row[0]) if row is not None else {"_id": doc_id}
        updated = apply_mutation(current, operations)
        body = encode_body({k: v for k, v in updated.items() if k != "_id"})
        self._write(conn, doc_id, body, "DO UPDATE SET doc = excluded.doc")
        return updated

    def delete(self, conn: sa.Connection, doc_id: str) -> bool:
        """Delete a document; False when there was none."""
        check_id(doc_id)
        ctx = SqlContext(_dialect(conn).placeholder)
        return bool(
            conn.exec_driver_sql(
                f"DELETE FROM {self.name} WHERE _id = {ctx.bind(doc_id)}", ctx.params
            ).rowcount
        )

    def _write(self, conn: sa.Connection, doc_id: str, body: str, on_conflict: str) -> int:
        dialect = _dialect(conn)
        ctx = SqlContext(dialect.placeholder)
        values = f"{ctx.bind(doc_id)}, {_json_param(dialect, ctx, body)}"
        sql = f"INSERT INTO {self.name} (_id, doc) VALUES ({values}) ON CONFLICT (_id) {on_conflict}"
        return int(conn.exec_driver_sql(sql, ctx.params).rowcount)

    # --- reads ---
    def find_by_id(
        self, conn: sa.Connection, doc_id: str, select: str | Sequence[str] | Mapping[str, Any] | None = None
    ) -> Document | None:
        check_id(doc_id)
        return next(self.find(conn, {"_id": doc_id}, select=select), None)

    def find(
        self,
        conn: sa.Connection,
        condition: Mapping[str, Any] | None = None,
        *,
        select: str | Sequence[str] | Mapping[str, Any] | None = None,
        order_by: object = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Iterator[Document]:
        """Documents matching ``condition`` (MongoDB semantics), projected, sorted and paged by the database.

        The condition is checked and the query run before this returns; rows stream as you iterate."""
        projection = parse_select(select)
        paths = projection.paths
        sort_keys = parse_order_by(order_by)
        limit, offset = _count_arg("limit", limit), _count_arg("offset", offset)
        dialect = _dialect(conn)
        ctx = SqlContext(dialect.placeholder)
        where = self._where(conn, dialect, ctx, condition)
        if paths is None:
            top_keys: list[str] = []
            columns = "_id, doc"
        else:
            trie = projection_trie(paths)
            top_keys = [key for key in trie if key != "_id"]
            columns = ", ".join(["_id", *(dialect.field_json(key) for key in top_keys)])
        sql = f"SELECT {columns} FROM {self.name} WHERE {where}"
        if sort_keys:
            terms = [
                term
                for key in sort_keys
                for term in dialect.sort_terms(_sort_ref(dialect, key.path), key.descending, ctx)
            ]
            if not any(key.path.is_id for key in sort_keys):
                terms.append("_id ASC")  # a stable order, so that pages do not overlap
            sql += " ORDER BY " + ", ".join(terms)
        if limit or offset:
            sql += (
                f" LIMIT {limit or -1}" if dialect.name == "sqlite" else (f" LIMIT {limit}" if limit else "")
            )
            sql += f" OFFSET {offset}" if offset else ""
        result: Iterable[Sequence[Any]] = self._query(conn, dialect, ctx, sql)
        if paths is None:
            if not projection.include_id:
                return (decode(None, row[1]) for row in result)
            return (decode(row[0], row[1]) for row in result)
        keep_id = projection.include_id
        return (assemble(row[0] if keep_id else None, top_keys, row[1:], trie) for row in result)

    def count(self, conn: sa.Connection, condition: Mapping[str, Any] | None = None) -> int:
        dialect = _dialect(conn)
        ctx = SqlContext(dialect.placeholder)
        where = self._where(conn, dialect, ctx, condition)
        return int(
            self._query(conn, dialect, ctx, f"SELECT count(*) FROM {self.name} WHERE {where}").scalar_one()
        )

    def explain(self, conn: sa.Connection, condition: Mapping[str, Any] | None = None) -> str:
        """The database's plan for ``find(condition)``, as text (to check that an index is used)."""
        dialect = _dialect(conn)
        ctx = SqlContext(dialect.placeholder)
        select = f"SELECT _id, doc FROM {self.name} WHERE {self._where(conn, dialect, ctx, condition)}"
        if dialect.name == "sqlite":
            rows: Iterable[Sequence[Any]] = self._query(conn, dialect, ctx, "EXPLAIN QUERY PLAN " + select)
            depth: dict[int, int] = {0: 0}
            lines = []
            for node_id, parent, _, detail in rows:
                depth[node_id] = depth.get(parent, 0) + 1
                lines.append("  " * (depth[node_id] - 1) + str(detail))
            return "\n".join(lines)
        return "\n".join(str(row[0]) for row in self._query(conn, dialect, ctx, "EXPLAIN " + select))

    def _where(
        self, conn: sa.Connection, dialect: Dialect, ctx: SqlContext, condition: Mapping[str, Any] | None
    ) -> str:
        node = parse_condition(condition)
        indexed = self._indexed_paths(conn) if Translator.may_use_indexes(node) else ()
        return Translator(dialect, ctx, indexed).where(node)

    def _query(
        self, conn: sa.Connection, dialect: Dialect, ctx: SqlContext, sql: str
    ) -> sa.CursorResult[Any]:
        if ctx.needs_functions and dialect.name == "sqlite":
            raw = conn.connection.driver_connection
            for name, arity, function in SQL_FUNCTIONS:
                raw.create_function(name, arity, function, deterministic=True)  # type: ignore[union-attr]
        if not ctx.params and dialect.name == "postgresql":
            sql = sql.replace("%%", "%")  # no parameters: the driver leaves '%' alone
        if dialect.name != "postgresql" or ctx.subquery_depth < JIT_SUBQUERY_DEPTH:
            return conn.exec_driver_sql(sql, ctx.params)
        # Nested subqueries over array elements look costly to PostgreSQL's planner (it guesses 100
        # elements an array), and JIT-compiling such a statement takes longer than running it
        # (seconds, not milliseconds). Turn JIT off for this statement only; psycopg has fetched
        # every row when execute returns, so the setting can be put back at once.
        jit = conn.exec_driver_sql("SELECT current_setting('jit'), set_config('jit', 'off', true)").scalar()
        try:
            return conn.exec_driver_sql(sql, ctx.params)
        finally:
            conn.exec_driver_sql("SELECT set_config('jit', %(jit)s, true)", {"jit": jit})

    # --- secondary indexes ---
    def add_index(self, conn: sa.Connection, name: str, fields: str | Sequence[str]) -> IndexInfo:
        """Create a secondary index, e.g. ``add_index(conn, "by_date", "modality:asc,study_date:desc")``."""
        info = IndexInfo(check_index_name(name), parse_index_fields(fields))
        existing = self.list_indexes(conn)
        if any(index.name == name for index in existing):
            raise Conflict(f"index {name!r} already exists on {self.name}")
        dialect = _dialect(conn)
        conn.exec_driver_sql(
            _no_params(dialect, index_ddl(dialect, self.name, self._sql_index(name), info.fields))
        )
        for prefix in array_prefixes([info]) - array_prefixes(existing):
            for statement in array_index_ddl(dialect, self.name, prefix):
                conn.exec_driver_sql(_no_params(dialect, statement))
        ctx = SqlContext(dialect.placeholder)
        conn.exec_driver_sql(
            f"INSERT INTO {self.index_table} (name, fields) VALUES ({ctx.bind(name)}, {ctx.bind(info.spec)})",
            ctx.params,
        )
        return info

    def drop_index(self, conn: sa.Connection, name: str) -> None:
        existing = self.list_indexes(conn)
        dropped = [index for index in existing if index.name == name]
        if not dropped:
            raise NotFound(f"no index {name!r} on {self.name}")
        conn.exec_driver_sql(f"DROP INDEX {self._sql_index(name)}")
        remaining = [index for index in existing if index.name != name]
        for prefix in array_prefixes(dropped) - array_prefixes(remaining):
            for statement in drop_array_index_ddl(_dialect(conn), self.name, prefix):
                conn.exec_driver_sql(statement)
        ctx = SqlContext(_dialect(conn).placeholder)
        conn.exec_driver_sql(f"DELETE FROM {self.index_table} WHERE name = {ctx.bind(name)}", ctx.params)

    def list_indexes(self, conn: sa.Connection) -> list[IndexInfo]:
        try:
            rows = conn.exec_driver_sql(f"SELECT name, fields FROM {self.index_table} ORDER BY name").all()
        except sa.exc.DBAPIError as error:
            raise NotFound(f"JSON table {self.name} does not exist ({error.orig})") from None
        return [IndexInfo(name, parse_index_fields(fields)) for name, fields in rows]

    def _indexed_paths(self, conn: sa.Connection) -> frozenset[tuple[str, ...]]:
        try:
            rows = conn.exec_driver_sql(f"SELECT fields FROM {self.index_table}").all()
        except sa.exc.DBAPIError as error:
            raise NotFound(f"JSON table {self.name} does not exist ({error.orig})") from None
        return frozenset(path for (fields,) in rows for path in _paths_of(fields))

    def _sql_index(self, name: str) -> str:
        return f"{self.name}_ix_{name}"


@functools.lru_cache(maxsize=1024)
def _paths_of(fields: str) -> tuple[tuple[str, ...], ...]:
    return tuple(f.path.components for f in parse_index_fields(fields) if not f.path.is_id)


def _dialect(conn: sa.Connection) -> Dialect:
    try:
        return _DIALECTS[conn.dialect.name]
    except KeyError:
        raise InvalidInput(f"JSON tables need SQLite or PostgreSQL, not {conn.dialect.name}") from None


def _json_param(dialect: Dialect, ctx: SqlContext, body: str) -> str:
    placeholder = ctx.bind(body)
    return placeholder if dialect.name == "sqlite" else f"CAST({placeholder} AS jsonb)"


def _no_params(dialect: Dialect, sql: str) -> str:
    return sql.replace("%%", "%") if dialect.name == "postgresql" else sql


def _sort_ref(dialect: Dialect, path: FieldPath) -> Ref:
    return IdRef() if path.is_id else dialect.static_path(path.components)


def _count_arg(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{name} must be a non-negative integer, not {value!r}")
    return value
