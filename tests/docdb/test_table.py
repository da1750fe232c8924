"""DocumentTable's contract with the fabric: CRUD, bulk loads, projection, ordering, paging, transactions."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from medfabric.docdb import DocumentTable
from medfabric.errors import Conflict, InvalidInput, NotFound
from tests.docdb.conftest import new_table_id


def test_insert_find_replace_delete(conn: sa.Connection, table: DocumentTable) -> None:
    doc = {"_id": "sop-1", "modality": "MR", "nested": {"a": [1, 2.5, "x", None, True]}, "name": "Zoë"}
    assert table.insert(conn, doc) == "sop-1"
    assert table.find_by_id(conn, "sop-1") == doc
    with pytest.raises(Conflict, match="sop-1"):
        table.insert(conn, doc)
    table.replace(conn, {"_id": "sop-1", "modality": "CT"})
    assert table.find_by_id(conn, "sop-1") == {"_id": "sop-1", "modality": "CT"}
    with pytest.raises(NotFound):
        table.replace(conn, {"_id": "nope", "modality": "CT"})
    with pytest.raises(InvalidInput, match="no _id"):
        table.replace(conn, {"modality": "CT"})
    assert table.delete(conn, "sop-1") is True
    assert table.delete(conn, "sop-1") is False
    assert table.find_by_id(conn, "sop-1") is None


def test_insert_after_conflict_leaves_the_transaction_usable(
    conn: sa.Connection, table: DocumentTable
) -> None:
    table.insert(conn, {"_id": "a", "v": 1})
    with pytest.raises(Conflict):
        table.insert(conn, {"_id": "a", "v": 2})
    table.insert(conn, {"_id": "b", "v": 3})  # PostgreSQL would refuse this after a failed statement
    assert [d["v"] for d in table.find(conn, order_by="_id")] == [1, 3]


def test_missing_id_is_generated_and_bad_ids_are_refused(conn: sa.Connection, table: DocumentTable) -> None:
    generated = table.insert(conn, {"modality": "US"})
    assert uuid.UUID(generated)
    assert table.find_by_id(conn, generated) == {"_id": generated, "modality": "US"}
    for bad in (42, "", None, ["x"]):
        with pytest.raises(InvalidInput, match="_id"):
            table.insert(conn, {"_id": bad})
    with pytest.raises(InvalidInput, match="JSON"):
        table.insert(conn, {"_id": "nan", "v": float("nan")})
    with pytest.raises(InvalidInput, match="JSON"):
        table.insert(conn, {"_id": "set", "v": {1, 2}})


def test_insert_or_replace(conn: sa.Connection, table: DocumentTable) -> None:
    table.insert_or_replace(conn, {"_id": "x", "v": 1})
    table.insert_or_replace(conn, {"_id": "x", "v": 2})
    assert list(table.find(conn)) == [{"_id": "x", "v": 2}]


def test_insert_many(conn: sa.Connection, table: DocumentTable) -> None:
    docs = [{"_id": f"{i:05d}", "n": i, "even": i % 2 == 0} for i in range(12_000)]
    assert table.insert_many(conn, iter(docs)) == 12_000
    assert table.count(conn) == 12_000
    assert table.count(conn, {"even": True, "n": {"$lt": 100}}) == 50
    assert (
        table.insert_many(
            conn, [{"_id": "00001", "n": -1}, {"_id": "new", "n": -2}, {"_id": "new", "n": -3}], replace=True
        )
        == 3
    )
    assert table.find_by_id(conn, "00001") == {"_id": "00001", "n": -1}
    assert table.find_by_id(conn, "new") == {"_id": "new", "n": -3}


def test_insert_many_conflict(engine: sa.Engine) -> None:
    table = DocumentTable(new_table_id())
    with engine.begin() as conn:
        table.create(conn)
        table.insert(conn, {"_id": "taken"})
    with pytest.raises(Conflict, match="already exists"), engine.begin() as conn:
        table.insert_many(conn, [{"_id": "free"}, {"_id": "taken"}])
    with pytest.raises(Conflict), engine.begin() as conn:
        table.insert_many(conn, [{"_id": "twice"}, {"_id": "twice"}])
    with engine.begin() as conn:
        assert [d["_id"] for d in table.find(conn)] == ["taken"]
        table.drop(conn)


def test_writes_belong_to_the_callers_transaction(engine: sa.Engine) -> None:
    table = DocumentTable(new_table_id())
    with engine.begin() as conn:
        table.create(conn)
    with engine.connect() as conn:
        table.insert(conn, {"_id": "rolled-back"})
        table.insert_many(conn, [{"_id": "also"}])
        conn.rollback()
    with engine.begin() as conn:
        assert table.count(conn) == 0
        table.update(conn, "x", {"$set": {"v": 1}}, upsert=True)
    with engine.begin() as conn:
        assert table.find_by_id(conn, "x") == {"_id": "x", "v": 1}
        table.drop(conn)
        assert not table.exists(conn)


def test_create_and_drop_errors(conn: sa.Connection, table: DocumentTable) -> None:
    with pytest.raises(Conflict):
        table.create(conn)
    missing = DocumentTable(new_table_id())
    with pytest.raises(NotFound):
        missing.drop(conn)
    with pytest.raises(InvalidInput):
        DocumentTable(-1)


@pytest.fixture
def sortable(conn: sa.Connection, table: DocumentTable) -> DocumentTable:
    table.insert_many(
        conn,
        [
            {"_id": "str", "v": "b", "w": 1},
            {"_id": "num", "v": 10, "w": 2},
            {"_id": "float", "v": 2.5, "w": 1},
            {"_id": "null", "v": None, "w": 2},
            {"_id": "missing", "w": 1},
            {"_id": "true", "v": True, "w": 2},
            {"_id": "obj", "v": {"k": 1}, "w": 1},
            {"_id": "arr", "v": [7, "a"], "w": 2},
            {"_id": "empty", "v": [], "w": 1},
            {"_id": "upper", "v": "B", "w": 2},
        ],
    )
    return table


def order(table: DocumentTable, conn: sa.Connection, order_by: Any, **kwargs: Any) -> list[str]:
    return [d["_id"] for d in table.find(conn, order_by=order_by, **kwargs)]


def test_order_by_follows_mongodb_cross_type_order(sortable: DocumentTable, conn: sa.Connection) -> None:
    # empty array < null = missing < numbers < strings (byte order) < objects < booleans;
    # an array sorts by its smallest element ascending, its largest descending
    assert order(sortable, conn, "v") == [
        "empty",
        "missing",
        "null",
        "float",
        "arr",
        "num",
        "upper",
        "str",
        "obj",
        "true",
    ]
    assert order(sortable, conn, "v:desc") == [
        "true",
        "obj",
        "str",
        "arr",
        "upper",
        "num",
        "float",
        "missing",
        "null",
        "empty",
    ]
    assert order(sortable, conn, [("w", "desc"), "v"]) == [
        "null",
        "arr",
        "num",
        "upper",
        "true",
        "empty",
        "missing",
        "float",
        "str",
        "obj",
    ]
    assert order(sortable, conn, {"w": 1, "_id": -1}) == [
        "str",
        "obj",
        "missing",
        "float",
        "empty",
        "upper",
        "true",
        "num",
        "null",
        "arr",
    ]


def test_limit_offset_and_count(sortable: DocumentTable, conn: sa.Connection) -> None:
    assert order(sortable, conn, "_id", limit=3) == ["arr", "empty", "float"]
    assert order(sortable, conn, "_id", limit=3, offset=3) == ["missing", "null", "num"]
    assert order(sortable, conn, "_id", offset=8) == ["true", "upper"]
    assert sortable.count(conn, {"w": 2}) == 5
    with pytest.raises(InvalidInput):
        list(sortable.find(conn, limit=-1))


def test_select_projects_dotted_fields_like_mongodb(conn: sa.Connection, table: DocumentTable) -> None:
    table.insert_many(
        conn,
        [
            {"_id": "1", "a": {"b": 1, "c": 2}, "d": 3, "e": None},
            {"_id": "2", "a": [{"b": 1, "c": 2}, 5, {"c": 3}, [{"b": 4}]], "d": 4},
            {"_id": "3", "a": 7},
        ],
    )
    found = {d["_id"]: d for d in table.find(conn, select=["a.b", "e", "zz"])}
    assert found == {
        "1": {"_id": "1", "a": {"b": 1}, "e": None},
        "2": {"_id": "2", "a": [{"b": 1}, {}, [{"b": 4}]]},
        "3": {"_id": "3"},
    }
    assert table.find_by_id(conn, "1", select="d,a") == {"_id": "1", "d": 3, "a": {"b": 1, "c": 2}}
    assert table.find_by_id(conn, "1", select=["a", "a.b"]) == {"_id": "1", "a": {"b": 1, "c": 2}}
    assert table.find_by_id(conn, "1", select=[]) == {"_id": "1"}
    assert table.find_by_id(conn, "1", select={"a.c": 1, "_id": 0}) == {"a": {"c": 2}}
    assert table.find_by_id(conn, "3", select={"_id": False}) == {"a": 7}
    with pytest.raises(InvalidInput, match="exclusion"):
        table.find_by_id(conn, "1", select={"a": 0})


def test_find_checks_its_arguments_before_returning(conn: sa.Connection, table: DocumentTable) -> None:
    with pytest.raises(InvalidInput, match=r"\$gt"):
        table.find(conn, {"a": {"$gt": [1]}})
    with pytest.raises(InvalidInput, match="direction"):
        table.find(conn, order_by="a:sideways")
    with pytest.raises(InvalidInput):
        table.find(conn, select=[1])  # type: ignore[list-item, unused-ignore]
