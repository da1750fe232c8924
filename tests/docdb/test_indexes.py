"""Secondary indexes: real database indexes that the planner uses, without losing MongoDB's array rules."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from medfabric.docdb import DocumentTable, IndexField, IndexInfo
from medfabric.docdb.paths import parse_path
from medfabric.errors import Conflict, InvalidInput, NotFound

SEED_CONDITION = {"modality": "MR", "study_date": {"$gt": "20240101"}}


def study_date(i: int) -> str:
    return f"{2015 + i % 11}{1 + i % 12:02d}{1 + i % 28:02d}"


@pytest.fixture
def studies(conn: sa.Connection, table: DocumentTable) -> DocumentTable:
    modalities = ["CT", "MR", "CR", "DX", "US"]
    table.insert_many(
        conn,
        (
            {
                "_id": f"{i:06d}",
                "modality": modalities[i % 5],
                "patient_id": f"P{i % 500}",
                "study_date": study_date(i),
            }
            for i in range(5000)
        ),
    )
    # documents with arrays on the indexed paths, which a plain expression index would miss
    table.insert_many(
        conn,
        [
            {"_id": "multi", "modality": ["CT", "MR"], "study_date": "20250101"},
            {"_id": "dates", "modality": "MR", "study_date": ["20100101", "20250102"]},
            {"_id": "number", "modality": "MR", "study_date": 20250101},
        ],
    )
    table.add_index(conn, "by_date", "modality:asc,study_date:desc")
    table.analyze(conn)
    return table


def test_add_list_drop(conn: sa.Connection, table: DocumentTable) -> None:
    info = table.add_index(conn, "by_date", "modality:asc, study_date:desc")
    assert info == IndexInfo(
        "by_date", (IndexField(parse_path("modality")), IndexField(parse_path("study_date"), descending=True))
    )
    assert info.spec == "modality:asc,study_date:desc"
    table.add_index(conn, "nested", ["series.number", "_id:desc"])
    assert [i.name for i in table.list_indexes(conn)] == ["by_date", "nested"]
    with pytest.raises(Conflict):
        table.add_index(conn, "by_date", "x")
    for name, fields in (("bad name", "x"), ("ok", "x:sideways"), ("ok", "x,x"), ("ok", "")):
        with pytest.raises(InvalidInput):
            table.add_index(conn, name, fields)
    table.drop_index(conn, "by_date")
    with pytest.raises(NotFound):
        table.drop_index(conn, "by_date")
    assert [i.name for i in table.list_indexes(conn)] == ["nested"]


def test_seed_condition_uses_the_index(studies: DocumentTable, conn: sa.Connection) -> None:
    plan = studies.explain(conn, SEED_CONDITION)
    assert f"{studies.name}_ix_by_date" in plan, plan
    if conn.dialect.name == "sqlite":
        assert f"SEARCH {studies.name} USING INDEX {studies.name}_ix_by_date (<expr>=? AND <expr>>?)" in plan
    else:
        assert "Seq Scan" not in plan, plan


def test_index_keeps_array_semantics(studies: DocumentTable, conn: sa.Connection) -> None:
    found = {d["_id"] for d in studies.find(conn, SEED_CONDITION)}
    expected = {f"{i:06d}" for i in range(5000) if i % 5 == 1 and study_date(i) > "20240101"}
    assert found == expected | {"multi", "dates"}
    assert studies.count(conn, {"modality": {"$in": ["MR"]}, "study_date": "20250102"}) == 1
    either = {
        "$or": [
            {"modality": "US", "study_date": {"$lt": "2015"}},
            {"modality": "CT", "study_date": "20250101"},
        ]
    }
    assert {d["_id"] for d in studies.find(conn, either)} == {"002100", "multi"}


def test_or_of_indexed_conditions_uses_the_index(studies: DocumentTable, conn: sa.Connection) -> None:
    plan = studies.explain(
        conn,
        {
            "$or": [
                {"modality": "US", "study_date": "20150101"},
                {"modality": "CT", "study_date": {"$gte": "20250101"}},
            ]
        },
    )
    assert f"{studies.name}_ix_by_date" in plan, plan


def test_unindexed_fields_are_scanned_but_still_correct(studies: DocumentTable, conn: sa.Connection) -> None:
    plan = studies.explain(conn, {"patient_id": "P7"})
    assert f"{studies.name}_ix_by_date" not in plan
    assert studies.count(conn, {"patient_id": "P7"}) == 10
    studies.add_index(conn, "by_patient", "patient_id")
    studies.analyze(conn)
    assert f"{studies.name}_ix_by_patient" in studies.explain(conn, {"patient_id": "P7"})
    assert studies.count(conn, {"patient_id": "P7"}) == 10


def test_indexes_are_real_database_objects(conn: sa.Connection, table: DocumentTable) -> None:
    def index_names() -> set[str]:
        if conn.dialect.name == "sqlite":
            sql = f"SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = '{table.name}'"
        else:
            sql = f"SELECT indexname FROM pg_indexes WHERE tablename = '{table.name}'"
        return {
            name
            for (name,) in conn.exec_driver_sql(sql)
            if not name.startswith(("sqlite_", f"{table.name}_pkey"))
        }

    table.add_index(conn, "by_date", "modality:asc,study_date:desc")
    table.add_index(conn, "by_series", "series.number")
    names = index_names()
    assert f"{table.name}_ix_by_date" in names and f"{table.name}_ix_by_series" in names
    assert len([n for n in names if "_arr_" in n]) == 4  # modality, study_date, series, series.number
    table.drop_index(conn, "by_series")
    assert len([n for n in index_names() if "_arr_" in n]) == 2
    table.drop_index(conn, "by_date")
    assert index_names() == set()
