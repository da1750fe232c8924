"""MongoDB's matching rules, case by case, on both dialects.

The null/missing/array tables are MongoDB's own (jstests/core/null_query_semantics.js and null2.js),
with ``undefined`` left out since JSON has none.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa

from medfabric.docdb import DocumentTable

NULL_DOCS: list[dict[str, Any]] = [
    {"_id": "a_empty_subobject", "a": {}},
    {"_id": "a_null", "a": None},
    {"_id": "a_number", "a": 4},
    {"_id": "a_subobject_b_not_null", "a": {"b": "hi"}},
    {"_id": "a_subobject_b_null", "a": {"b": None}},
    {"_id": "no_a"},
    {"_id": "a_double_array", "a": [[]]},
    {"_id": "a_empty_array", "a": []},
    {"_id": "a_object_array_all_b_nulls", "a": [{"b": None}, {"b": None}, {}]},
    {"_id": "a_object_array_no_b_nulls", "a": [{"b": 1}, {"b": 3}, {"b": "string"}]},
    {"_id": "a_object_array_some_b_nulls", "a": [{"b": None}, {"b": 3}, {"b": None}]},
    {"_id": "a_object_array_some_b_missing", "a": [{"b": 3}, {}]},
    {"_id": "a_value_array_all_nulls", "a": [None, None]},
    {"_id": "a_value_array_no_nulls", "a": [1, "string", 4]},
    {"_id": "a_value_array_with_null", "a": [1, "string", None, 4]},
]
ALL_NULL_IDS = {d["_id"] for d in NULL_DOCS}
EQ_NULL = {"a_null", "no_a", "a_value_array_all_nulls", "a_value_array_with_null"}
DOTTED_EQ_NULL = {
    "a_empty_subobject",
    "a_null",
    "a_number",
    "a_subobject_b_null",
    "no_a",
    "a_object_array_all_b_nulls",
    "a_object_array_some_b_nulls",
    "a_object_array_some_b_missing",
}


def ids(table: DocumentTable, conn: sa.Connection, condition: dict[str, Any]) -> set[str]:
    return {doc["_id"] for doc in table.find(conn, condition)}


@pytest.fixture
def nulls(conn: sa.Connection, table: DocumentTable) -> DocumentTable:
    table.insert_many(conn, NULL_DOCS)
    return table


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"a": {"$eq": None}}, EQ_NULL),
        ({"a": None}, EQ_NULL),
        ({"a": {"$ne": None}}, ALL_NULL_IDS - EQ_NULL),
        ({"a": {"$not": {"$gte": None}}}, ALL_NULL_IDS - EQ_NULL),
        ({"a": {"$lte": None}}, EQ_NULL),
        ({"a": {"$gt": None}}, set()),
        ({"a": {"$in": [None, 75]}}, EQ_NULL),
        ({"$or": [{"a": None}, {"a": 75}]}, EQ_NULL),
        ({"$or": [{"a": None}, {"a": 4}]}, EQ_NULL | {"a_number", "a_value_array_no_nulls"}),
        ({"a": {"$nin": [None, 75]}}, ALL_NULL_IDS - EQ_NULL),
        ({"a": {"$exists": False}}, {"no_a"}),
        ({"a.b": {"$eq": None}}, DOTTED_EQ_NULL),
        ({"a.b": {"$ne": None}}, ALL_NULL_IDS - DOTTED_EQ_NULL),
        ({"a.b": {"$in": [None, 75]}}, DOTTED_EQ_NULL),
        ({"a.b": {"$nin": [None, 75]}}, ALL_NULL_IDS - DOTTED_EQ_NULL),
        (
            {"a.b": {"$exists": False}},
            {
                "no_a",
                "a_empty_subobject",
                "a_null",
                "a_number",
                "a_double_array",
                "a_empty_array",
                "a_value_array_all_nulls",
                "a_value_array_no_nulls",
                "a_value_array_with_null",
            },
        ),
        (
            {"$notexists": "a.b"},
            {
                "no_a",
                "a_empty_subobject",
                "a_null",
                "a_number",
                "a_double_array",
                "a_empty_array",
                "a_value_array_all_nulls",
                "a_value_array_no_nulls",
                "a_value_array_with_null",
            },
        ),
    ],
)
def test_null_and_missing_follow_mongodb(
    nulls: DocumentTable, conn: sa.Connection, condition: dict[str, Any], expected: set[str]
) -> None:
    assert ids(nulls, conn, condition) == expected


def test_null_inside_arrays_of_subdocuments(conn: sa.Connection, table: DocumentTable) -> None:
    # jstests/core/null2.js
    table.insert_many(
        conn,
        [
            {"_id": "1", "a": [{"b": 5}]},
            {"_id": "2", "a": [{}]},
            {"_id": "3", "a": []},
            {"_id": "4", "a": [{}, {"b": 5}]},
            {"_id": "5", "a": [5, {"b": 5}]},
        ],
    )
    assert ids(table, conn, {"a.b": None}) == {"2", "4"}
    assert ids(table, conn, {"a.b": {"$in": [None]}}) == {"2", "4"}


@pytest.fixture
def mixed(conn: sa.Connection, table: DocumentTable) -> DocumentTable:
    table.insert_many(
        conn,
        [
            {"_id": "int", "v": 2024},
            {"_id": "float", "v": 2024.5},
            {"_id": "str", "v": "2024"},
            {"_id": "later", "v": "20250101"},
            {"_id": "true", "v": True},
            {"_id": "false", "v": False},
            {"_id": "null", "v": None},
            {"_id": "none"},
            {"_id": "arr", "v": [1, "2025", [2024]]},
            {"_id": "obj", "v": {"x": 1}},
            {"_id": "one", "v": 1},
            {"_id": "zero", "v": 0},
        ],
    )
    return table


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"v": {"$gt": "2024"}}, {"later", "arr"}),  # strings only, never numbers
        ({"v": {"$gt": 2000}}, {"int", "float"}),  # numbers across int and float
        ({"v": {"$lt": 2}}, {"arr", "one", "zero"}),  # 1 in the array; booleans are not numbers
        ({"v": 1}, {"one", "arr"}),
        ({"v": True}, {"true"}),
        ({"v": {"$gt": False}}, {"true"}),
        ({"v": 0}, {"zero"}),
        ({"v": {"$ne": 1}}, {"int", "float", "str", "later", "true", "false", "null", "none", "obj", "zero"}),
        ({"v": [2024]}, {"arr"}),  # an element that is itself an array
        ({"v": [1, "2025", [2024]]}, {"arr"}),  # the whole array
        ({"v": [1, "2025"]}, set()),
        ({"v": [1.0, "2025", [2024.0]]}, {"arr"}),  # 1.0 equals 1 inside arrays too
        ({"v": {"x": 1}}, {"obj"}),
        ({"v": {"$in": [2024, "2024"]}}, {"int", "str"}),
        ({"v": {"$between": [2024, 2025]}}, {"int", "float"}),
        ({"$between": {"v": ["2024", "2025"]}}, {"str", "arr"}),
        ({"v": {"$typeof": "string"}}, {"str", "later", "arr"}),
        ({"v": {"$typeof": "int"}}, {"int", "arr", "one", "zero"}),
        ({"v": {"$typeof": "double"}}, {"float"}),
        ({"v": {"$typeof": ["boolean", "null"]}}, {"true", "false", "null"}),
        ({"v": {"$typeof": "array"}}, {"arr"}),
        ({"v": {"$typeof": "map"}}, {"obj"}),
        (
            {"v": {"$exists": True}},
            {"int", "float", "str", "later", "true", "false", "null", "arr", "obj", "one", "zero"},
        ),
    ],
)
def test_comparisons_stay_within_a_type_bracket(
    mixed: DocumentTable, conn: sa.Connection, condition: dict[str, Any], expected: set[str]
) -> None:
    assert ids(mixed, conn, condition) == expected


@pytest.fixture
def studies(conn: sa.Connection, table: DocumentTable) -> DocumentTable:
    table.insert_many(
        conn,
        [
            {
                "_id": "1",
                "modality": "MR",
                "study_date": "20240105",
                "tags": ["brain", "t1"],
                "series": [{"n": 1, "desc": "T1 AXIAL"}, {"n": 2, "desc": "T2 SAG"}],
                "patient": {"name": "DOE^JOHN"},
            },
            {
                "_id": "2",
                "modality": "CT",
                "study_date": "20231231",
                "tags": ["chest"],
                "series": [{"n": 1, "desc": "LUNG"}],
                "patient": {"name": "ROE^JANE"},
            },
            {
                "_id": "3",
                "modality": "MR",
                "study_date": "20230101",
                "tags": [],
                "patient": {"name": "doe^jim"},
            },
            {"_id": "4", "modality": "mr", "study_date": "20250101", "series": {"n": 7, "desc": "SCOUT"}},
        ],
    )
    return table


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"modality": "MR", "study_date": {"$gt": "20240101"}}, {"1"}),
        ({"$gt": {"study_date": "20240101"}}, {"1", "4"}),
        ({"$and": [{"$eq": {"modality": "MR"}}, {"$ge": {"study_date": "20230101"}}]}, {"1", "3"}),
        ({"tags": "brain"}, {"1"}),
        ({"tags": ["chest"]}, {"2"}),
        ({"tags": {"$sizeof": 0}}, {"3"}),
        ({"tags": {"$size": 2}}, {"1"}),
        ({"$sizeof": {"tags": {"$ge": 1}}}, {"1", "2"}),
        ({"patient.name": {"$sizeof": {"$gt": 7}}}, {"1", "2"}),
        ({"series": {"$sizeof": 2}}, {"1", "4"}),  # two elements, or a map of two fields
        ({"series.n": 2}, {"1"}),
        ({"series.n": 7}, {"4"}),
        ({"series.desc": {"$like": "T_ %"}}, {"1"}),
        ({"series.0.desc": "T1 AXIAL"}, {"1"}),
        ({"series[1].n": 2}, {"1"}),
        ({"patient.name": {"$like": "DOE%"}}, {"1"}),  # LIKE is case-sensitive
        ({"patient.name": {"$notlike": "DOE%"}}, {"2", "3", "4"}),
        ({"patient.name": {"$matches": "(?i)^doe"}}, {"1", "3"}),
        ({"patient.name": {"$regex": "^doe", "$options": "i"}}, {"1", "3"}),
        ({"patient.name": {"$notmatches": "J"}}, {"3", "4"}),
        ({"patient.name": re.compile("^doe", re.IGNORECASE)}, {"1", "3"}),
        ({"patient.name": {"$in": [re.compile("^ROE"), "doe^jim"]}}, {"2", "3"}),
        ({"patient.name": {"$nin": [re.compile("^ROE"), "doe^jim"]}}, {"1", "4"}),
        ({"patient.name": {"$not": re.compile("O")}}, {"3", "4"}),
        ({"modality": {"$in": ["MR", "US"]}}, {"1", "3"}),
        ({"modality": {"$notin": ["MR", "US"]}}, {"2", "4"}),
        ({"$not": {"modality": "MR"}}, {"2", "4"}),
        ({"$or": [{"modality": "CT"}, {"study_date": {"$lt": "20230102"}}]}, {"2", "3"}),
        ({"$nor": [{"modality": "CT"}, {"study_date": {"$lt": "20230102"}}]}, {"1", "4"}),
        ({"$exists": "series"}, {"1", "2", "4"}),
        ({"series": {"$elemMatch": {"n": 1, "desc": {"$like": "T%"}}}}, {"1"}),
        ({"series": {"$elemMatch": {"n": {"$gt": 1}}}}, {"1"}),
        ({"series.n": {"$gt": 1}, "series.desc": "LUNG"}, set()),
        ({"tags": {"$elemMatch": {"$gte": "c", "$lt": "d"}}}, {"2"}),
        ({"tags": {"$all": ["t1", "brain"]}}, {"1"}),
        ({"tags": {"$all": []}}, set()),
        ({"_id": "2"}, {"2"}),
        ({"_id": {"$gt": "2"}}, {"3", "4"}),
        ({"_id": {"$in": ["1", "4", 4]}}, {"1", "4"}),
        ({"_id": {"$gt": 1}}, set()),
        ({"_id.x": None}, {"1", "2", "3", "4"}),
        ({}, {"1", "2", "3", "4"}),
    ],
)
def test_fields_paths_and_operators(
    studies: DocumentTable, conn: sa.Connection, condition: dict[str, Any], expected: set[str]
) -> None:
    assert ids(studies, conn, condition) == expected


def test_like_and_matches_treat_their_metacharacters_right(conn: sa.Connection, table: DocumentTable) -> None:
    table.insert_many(
        conn,
        [{"_id": "1", "s": "50%_off*[x]"}, {"_id": "2", "s": "50 off"}, {"_id": "3", "s": "line1\nline2"}],
    )
    assert ids(table, conn, {"s": {"$like": "50%"}}) == {"1", "2"}
    assert ids(table, conn, {"s": {"$like": ["50!%!_off*[x]", "!"]}}) == {"1"}
    assert ids(table, conn, {"s": {"$like": "%*[x]"}}) == {"1"}
    assert ids(table, conn, {"s": {"$matches": r"^line2$"}}) == set()
    assert ids(table, conn, {"s": {"$matches": r"^line2$", "$options": "m"}}) == {"3"}
    assert ids(table, conn, {"s": {"$matches": r"1.line"}}) == set()
    assert ids(table, conn, {"s": {"$matches": r"1.line", "$options": "s"}}) == {"3"}
    assert ids(table, conn, {"s": {"$matches": r"\d+ off"}}) == {"2"}
