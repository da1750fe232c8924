"""JSON tables in the namespace: lifecycle, rights, and the seed's query through medfabric.db."""

from __future__ import annotations

import pytest

from medfabric.db import connect
from medfabric.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from medfabric.service.access import Principal
from medfabric.service.fabric import Fabric

DOCS = [
    {"_id": "1.2.3.1", "modality": "MR", "study_date": "20240315", "patient_id": "P1"},
    {"_id": "1.2.3.2", "modality": "CT", "study_date": "20240315", "patient_id": "P1"},
    {"_id": "1.2.3.3", "modality": "MR", "study_date": "20231201", "patient_id": "P2"},
    {
        "_id": "1.2.3.4",
        "modality": "MR",
        "study_date": 20240401,
        "patient_id": "P3",
    },  # a number: never > a string
]


def test_the_seed_query_runs_in_the_database_with_the_index(fabric: Fabric) -> None:
    fabric.tables.create("/medical_metadata")
    table = connect("/medical_metadata", fabric=fabric)
    assert table.insert_many(DOCS) == 4
    filler = [
        {"_id": f"9.{i}", "modality": ("CT", "CR", "US")[i % 3], "study_date": f"2019{i % 12 + 1:02}01"}
        for i in range(3000)
    ]  # enough rows that a planner prefers the index to a scan
    table.insert_many(filler)
    table.add_index("by_modality_date", "modality:asc,study_date:desc")
    condition = {"modality": "MR", "study_date": {"$gt": "20240101"}}
    assert [doc["_id"] for doc in table.find(condition)] == ["1.2.3.1"]
    plan = fabric.tables.explain("/medical_metadata", condition)
    assert "by_modality_date" in plan
    info = fabric.tables.info("/medical_metadata")
    assert info.documents == 3004 and [index.name for index in info.indexes] == ["by_modality_date"]
    assert fabric.fs.stat("/medical_metadata").type == "table"


def test_documents_change_through_the_handle(fabric: Fabric) -> None:
    table = connect("/t", fabric=fabric, create=True)
    table.insert({"_id": "a", "n": 1, "tags": ["x"]})
    with pytest.raises(Conflict):
        table.insert({"_id": "a"})
    table.update("a", {"$increment": {"n": 2}, "$append": {"tags": "y"}})
    assert table.find_by_id("a") == {"_id": "a", "n": 3, "tags": ["x", "y"]}
    table.replace({"_id": "a", "n": 0})
    assert table.count({"n": 0}) == 1
    assert table.delete("a")
    assert table.count() == 0


def test_tables_are_namespace_objects_with_rights(fabric: Fabric) -> None:
    fabric.volumes.create("v", "/v", read_ace="p")
    fabric.tables.create("/v/meta")
    with pytest.raises(Conflict):
        fabric.tables.create("/v/meta")
    with pytest.raises(Conflict, match="table delete"):
        fabric.fs.remove("/v/meta")
    with pytest.raises(Conflict):
        fabric.fs.write("/v/meta", b"x", overwrite=True)
    with pytest.raises(InvalidInput):
        fabric.fs.read("/v/meta")
    fabric.fs.rename("/v/meta", "/v/metadata")
    assert fabric.tables.count("/v/metadata") == 0
    guest = fabric.acting_as(Principal("guest"))
    assert guest.tables.count("/v/metadata") == 0  # 0644: others may read
    with pytest.raises(PermissionDenied):
        guest.tables.change("/v/metadata", "insert", {"_id": "x"})
    fabric.tables.delete("/v/metadata")
    with pytest.raises(NotFound):
        fabric.tables.info("/v/metadata")
    with pytest.raises(InvalidInput):
        fabric.tables.find("/v", {})


def test_bad_conditions_are_clear_errors(fabric: Fabric) -> None:
    table = connect("/t", fabric=fabric, create=True)
    with pytest.raises(InvalidInput):
        table.find("{not json")
    with pytest.raises(InvalidInput):
        table.find({"a": {"$nosuch": 1}})
