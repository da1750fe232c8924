"""MapR-DB JSON style access from Python: ``connect('/medical_metadata').find({...})``.

A thin handle over ``Fabric.tables``; every call is checked and audited by the service layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medfabric.docdb import IndexInfo
    from medfabric.service.fabric import Fabric

Document = dict[str, Any]


class Table:
    """One JSON table. Results are lists of plain dicts (``_id`` included)."""

    def __init__(self, fabric: Fabric, path: str, *, owns_fabric: bool = False) -> None:
        self.fabric = fabric
        self.path = path
        self._owns_fabric = owns_fabric
        fabric.tables.info(path)  # fails now, clearly, if there is no such table

    def find(
        self,
        condition: Mapping[str, Any] | str | None = None,
        *,
        select: str | Sequence[str] | None = None,
        order_by: object = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[Document]:
        return self.fabric.tables.find(
            self.path, condition, select=select, order_by=order_by, limit=limit, offset=offset
        )

    def count(self, condition: Mapping[str, Any] | str | None = None) -> int:
        return self.fabric.tables.count(self.path, condition)

    def find_by_id(self, doc_id: str, select: str | Sequence[str] | None = None) -> Document | None:
        return self.fabric.tables.find_by_id(self.path, doc_id, select)

    def insert(self, document: Mapping[str, Any]) -> str:
        result: str = self.fabric.tables.change(self.path, "insert", document)
        return result

    def insert_or_replace(self, document: Mapping[str, Any]) -> str:
        result: str = self.fabric.tables.change(self.path, "insert_or_replace", document)
        return result

    def insert_many(self, documents: Iterable[Mapping[str, Any]], *, replace: bool = False) -> int:
        result: int = self.fabric.tables.change(self.path, "insert_many", list(documents), replace=replace)
        return result

    def replace(self, document: Mapping[str, Any]) -> None:
        self.fabric.tables.change(self.path, "replace", document)

    def update(self, doc_id: str, mutation: Mapping[str, Any]) -> None:
        self.fabric.tables.change(self.path, "update", doc_id, mutation)

    def delete(self, doc_id: str) -> bool:
        result: bool = self.fabric.tables.change(self.path, "delete", doc_id)
        return result

    def add_index(self, name: str, fields: str | Sequence[str]) -> IndexInfo:
        return self.fabric.tables.add_index(self.path, name, fields)

    def close(self) -> None:
        if self._owns_fabric:
            self.fabric.close()

    def __enter__(self) -> Table:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def connect(path: str, *, fabric: Fabric | None = None, create: bool = False) -> Table:
    """The JSON table at ``path`` (of ``fabric``, or of the default fabric: $MEDFABRIC_HOME)."""
    owns = fabric is None
    if fabric is None:
        import medfabric

        fabric = medfabric.open()
    try:
        if create and not fabric.tables.exists(path):
            fabric.tables.create(path)
        return Table(fabric, path, owns_fabric=owns)
    except BaseException:
        if owns:
            fabric.close()
        raise
