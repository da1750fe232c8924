"""JSON tables of the service: MapR-DB JSON tables that live in the namespace.

A table is a namespace entry (kind "t") mapped to a document table in the catalog database
(``medfabric.docdb``). Creating, finding and changing documents check the principal's rights on
the entry like any file, and are reported like any access.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.catalog.schema import doc_tables
from medfabric.docdb import DocumentTable, IndexInfo
from medfabric.docdb.conditions import condition_from_text
from medfabric.docdb.documents import EncodedDocument
from medfabric.errors import Conflict, InvalidInput, NotFound
from medfabric.fs.model import KIND_TABLE, Entry
from medfabric.fs.namespace import load_mounts
from medfabric.fs.paths import check_name
from medfabric.security.ace import AccessOp
from medfabric.service.access import DELETECHILD, READ, WRITE, inherited_aces, require
from medfabric.service.paths import Located, entry_stat, locate, walk_checked
from medfabric.service.writes import check_writable

if TYPE_CHECKING:
    from medfabric.fs.model import FileStat
    from medfabric.service.fabric import Fabric

Document = dict[str, Any]


@dataclass(frozen=True)
class TableInfo:
    path: str
    table_id: int
    volume: str
    owner: str
    documents: int
    indexes: tuple[IndexInfo, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "tableid": self.table_id,
            "volume": self.volume,
            "owner": self.owner,
            "numDocuments": self.documents,
            "indexes": [{"name": index.name, "indexedfields": index.spec} for index in self.indexes],
        }


class TableService:
    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric

    # -- resolving --

    def _table(
        self, conn: Connection, path: str, want: AccessOp | None
    ) -> tuple[Located, Entry, DocumentTable]:
        located = locate(conn, path)
        entry = walk_checked(conn, located, self.fabric.principal)[-1]
        if entry.kind != KIND_TABLE:
            raise InvalidInput(f"{path} is not a JSON table")
        if want is not None:
            require(self.fabric.principal, located.volume, entry, want, path)
        table_id = conn.execute(
            sa.select(doc_tables.c.id).where(
                doc_tables.c.volume_id == entry.volume_id, doc_tables.c.ino == entry.ino
            )
        ).scalar()
        if table_id is None:
            raise NotFound(f"{path}: the table's documents are missing from the catalog")
        return located, entry, DocumentTable(int(table_id))

    # -- lifecycle --

    def create(self, path: str) -> FileStat:
        fabric = self.fabric
        with fabric.access("table create", path) as note, fabric.catalog.write() as conn:
            stat = self._create_in(conn, path)
            note.volume = stat.volume
            return stat

    def _create_in(self, conn: Connection, path: str) -> FileStat:
        fabric = self.fabric
        located = locate(conn, path, load_mounts(conn))
        if located.is_volume_root:
            raise Conflict(f"{path} is a volume's mount point")
        writes = fabric.fs
        writer = writes._writer(conn, located)
        directory = writes._directory(writer, located, parents=True)
        name = check_name(located.inside[-1], path)
        if writer.lookup(directory.ino, name) is not None:
            raise Conflict(f"{path} already exists")
        entry = writer.create(
            parent_ino=directory.ino,
            name=name,
            kind=KIND_TABLE,
            mode=0o644,
            owner=fabric.principal.name,
            grp=directory.grp,
            aces=inherited_aces(directory, is_directory=False),
        )
        writer.finish()
        table_id = conn.execute(
            doc_tables.insert()
            .values(
                volume_id=entry.volume_id,
                ino=entry.ino,
                owner=fabric.principal.name,
                created_at=fabric.clock.now_ms(),
            )
            .returning(doc_tables.c.id)
        ).scalar_one()
        DocumentTable(int(table_id)).create(conn)
        return entry_stat(located, entry)

    def delete(self, path: str) -> None:
        fabric = self.fabric
        with fabric.access("table delete", path) as note, fabric.catalog.write() as conn:
            located, entry, table = self._table(conn, path, WRITE)
            note.target(located.volume)
            writer = fabric.fs._writer(conn, located)
            parent = writer.get(entry.parent_ino)
            if parent is not None:
                require(fabric.principal, located.volume, parent, DELETECHILD, path)
            writer.retire(entry)
            writer.finish()
            table.drop(conn)
            conn.execute(doc_tables.delete().where(doc_tables.c.id == table.table_id))

    def info(self, path: str) -> TableInfo:
        fabric = self.fabric
        with fabric.access("table info", path) as note, fabric.catalog.read() as conn:
            located, entry, table = self._table(conn, path, READ)
            note.target(located.volume)
            return TableInfo(
                located.path,
                table.table_id,
                located.volume.name,
                entry.owner,
                table.count(conn),
                tuple(table.list_indexes(conn)),
            )

    def exists(self, path: str) -> bool:
        try:
            with self.fabric.catalog.read() as conn:
                self._table(conn, path, None)
        except (NotFound, InvalidInput):
            return False
        return True

    # -- indexes --

    def add_index(self, path: str, name: str, fields: str | Sequence[str]) -> IndexInfo:
        fabric = self.fabric
        with fabric.access("table index add", path) as note, fabric.catalog.write() as conn:
            located, _entry, table = self._table(conn, path, WRITE)
            note.target(located.volume)
            return table.add_index(conn, name, fields)

    def drop_index(self, path: str, name: str) -> None:
        fabric = self.fabric
        with fabric.access("table index remove", path) as note, fabric.catalog.write() as conn:
            located, _entry, table = self._table(conn, path, WRITE)
            note.target(located.volume)
            table.drop_index(conn, name)

    def list_indexes(self, path: str) -> builtins.list[IndexInfo]:
        fabric = self.fabric
        with fabric.access("table index list", path) as note, fabric.catalog.read() as conn:
            located, _entry, table = self._table(conn, path, READ)
            note.target(located.volume)
            return table.list_indexes(conn)

    # -- documents --

    def find(
        self,
        path: str,
        condition: Mapping[str, Any] | str | None = None,
        *,
        select: str | Sequence[str] | None = None,
        order_by: object = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> builtins.list[Document]:
        fabric = self.fabric
        with fabric.access("table find", path) as note, fabric.catalog.read() as conn:
            located, _entry, table = self._table(conn, path, READ)
            note.target(located.volume)
            return builtins.list(
                table.find(
                    conn,
                    condition_from_text(condition),
                    select=select,
                    order_by=order_by,
                    limit=limit,
                    offset=offset,
                )
            )

    def count(self, path: str, condition: Mapping[str, Any] | str | None = None) -> int:
        fabric = self.fabric
        with fabric.access("table find", path) as note, fabric.catalog.read() as conn:
            located, _entry, table = self._table(conn, path, READ)
            note.target(located.volume)
            return table.count(conn, condition_from_text(condition))

    def explain(self, path: str, condition: Mapping[str, Any] | str | None = None) -> str:
        with self.fabric.catalog.read() as conn:
            _located, _entry, table = self._table(conn, path, READ)
            return table.explain(conn, condition_from_text(condition))

    def find_by_id(
        self, path: str, doc_id: str, select: str | Sequence[str] | None = None
    ) -> Document | None:
        fabric = self.fabric
        with fabric.access("table get", path) as note, fabric.catalog.read() as conn:
            located, _entry, table = self._table(conn, path, READ)
            note.target(located.volume)
            return table.find_by_id(conn, doc_id, select=select)

    def change(self, path: str, operation: str, *args: Any, **kwargs: Any) -> Any:
        """One write operation of DocumentTable (insert, insert_or_replace, replace, update, delete,
        insert_many) in its own transaction."""
        if operation not in ("insert", "insert_or_replace", "replace", "update", "delete", "insert_many"):
            raise InvalidInput(f"unknown table operation {operation!r}")
        fabric = self.fabric
        with fabric.access(f"table {operation}", path) as note, fabric.catalog.write() as conn:
            located, _entry, table = self._table(conn, path, WRITE)
            note.target(located.volume)
            check_writable(located.volume)
            return getattr(table, operation)(conn, *args, **kwargs)

    def writable_within(self, conn: Connection, path: str) -> DocumentTable:
        """The table at ``path`` to write inside the caller's transaction (for the imaging index,
        which follows the files it describes); NotFound if there is none."""
        _located, _entry, table = self._table(conn, path, WRITE)
        return table

    def upsert_documents(
        self, conn: Connection, path: str, documents: Iterable[Mapping[str, Any] | EncodedDocument]
    ) -> int:
        """Insert or replace documents by _id inside the caller's transaction, creating the table
        if it does not exist (for ingest, which writes them with the files they describe)."""
        try:
            _located, _entry, table = self._table(conn, path, WRITE)
        except NotFound:
            self._create_in(conn, path)
            _located, _entry, table = self._table(conn, path, WRITE)
        return table.insert_many(conn, documents, replace=True)
