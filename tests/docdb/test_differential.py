"""Generated documents and conditions: the SQL translation must agree with a model of MongoDB.

The oracle is mongo_model.py (MongoDB's rules, pinned by MongoDB's jstests in test_semantics.py).
mongomock checks the model where mongomock itself follows MongoDB: it departs from MongoDB on
booleans (``False == 0``), on null ranges (``$lte: null``), on dotted paths through scalars and on
array operands, all of which MongoDB's own jstests contradict; those are left out of that check.
"""

from __future__ import annotations

import os
from typing import Any

import mongomock
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medfabric.docdb import DocumentTable
from tests.docdb import mongo_model
from tests.docdb.conftest import new_table_id

KEYS = ("a", "b", "c")
TEXTS = ("", "a", "b", "ab", "B", "MR", "é", "a%b")
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([1.5, -0.5, 2.0]), st.sampled_from(TEXTS)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=2)
    ),
    max_leaves=6,
)
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=3)
paths = st.builds(
    lambda first, rest: ".".join([first, *rest]),
    st.sampled_from(KEYS),
    st.lists(st.sampled_from((*KEYS, "0", "1")), max_size=2),
)
EXAMPLES = int(os.environ.get("DOCDB_EXAMPLES", "60"))  # raise it for a deeper search
RANGE_OPS = ("$lt", "$le", "$lte", "$gt", "$ge", "$gte")


def predicates(operands: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    scalar_operands = scalars
    return st.one_of(
        st.builds(lambda p, v: {p: v}, paths, operands),
        st.builds(lambda p, op, v: {p: {op: v}}, paths, st.sampled_from(("$eq", "$ne")), operands),
        st.builds(lambda p, op, v: {p: {op: v}}, paths, st.sampled_from(RANGE_OPS), scalar_operands),
        st.builds(
            lambda p, op, v: {p: {op: v}},
            paths,
            st.sampled_from(("$in", "$nin")),
            st.lists(operands, max_size=3),
        ),
        st.builds(lambda p, v: {p: {"$exists": v}}, paths, st.booleans()),
        st.builds(
            lambda p, op, v: {p: {"$not": {op: v}}}, paths, st.sampled_from(RANGE_OPS), scalar_operands
        ),
        st.builds(lambda p, t: {p: {"$typeof": t}}, paths, st.sampled_from(sorted(mongo_model.TYPE_NAMES))),
        st.builds(lambda p, n: {p: {"$size": n}}, paths, st.integers(0, 2)),
        st.builds(
            lambda p, r: {p: {"$matches": r}}, paths, st.sampled_from(("a", "^a", "b$", "^$", "(?i)b"))
        ),
        st.builds(lambda p, r: {p: {"$like": r}}, paths, st.sampled_from(("a%", "%b", "_", "%", "a!%b"))),
        st.builds(lambda p, lo, hi: {"$between": {p: [lo, hi]}}, paths, scalar_operands, scalar_operands),
        st.builds(lambda op, p, v: {op: {p: v}}, st.sampled_from(RANGE_OPS), paths, scalar_operands),
        st.builds(lambda p, vs: {p: {"$all": vs}}, paths, st.lists(operands, max_size=2)),
        st.builds(
            lambda p, op, v: {p: {"$elemMatch": {op: v}}},
            paths,
            st.sampled_from(("$eq", "$ne", "$gt", "$lte", "$gte")),
            scalar_operands,
        ),
        st.builds(lambda p, k, v: {p: {"$elemMatch": {k: v}}}, paths, st.sampled_from(KEYS), operands),
    )


def conditions(operands: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.recursive(
        predicates(operands),
        lambda inner: st.one_of(
            st.builds(
                lambda op, cs: {op: cs},
                st.sampled_from(("$and", "$or", "$nor")),
                st.lists(inner, min_size=1, max_size=3),
            ),
            st.builds(lambda c: {"$not": c}, inner),
        ),
        max_leaves=4,
    )


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    docs=st.lists(documents, max_size=12),
    queries=st.lists(conditions(values), min_size=1, max_size=8),
    indexed=st.booleans(),
)
def test_sql_agrees_with_the_model(
    conn: sa.Connection, docs: list[dict[str, Any]], queries: list[dict[str, Any]], indexed: bool
) -> None:
    table = DocumentTable(new_table_id())
    table.create(conn)
    table.insert_many(conn, [{"_id": f"{i:02d}", **doc} for i, doc in enumerate(docs)])
    if indexed:
        table.add_index(conn, "one", "a,b.c")
        table.add_index(conn, "two", "c.0:desc")
    stored = {d["_id"]: d for d in table.find(conn)}
    mongo_model.ORDERED_KEYS[0] = conn.dialect.name == "sqlite"  # a documented PostgreSQL departure
    try:
        for condition in queries:
            expected = sorted(i for i, d in stored.items() if mongo_model.matches(d, condition))
            assert sorted(d["_id"] for d in table.find(conn, condition)) == expected, condition
            assert table.count(conn, condition) == len(expected)
    finally:
        mongo_model.ORDERED_KEYS[0] = True


# where mongomock follows MongoDB: no booleans, single-component paths, scalar operands, no null ranges
plain_scalars = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from([1.5, -0.5]), st.sampled_from(TEXTS))
plain_values = st.recursive(
    plain_scalars,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=2)
    ),
    max_leaves=5,
)
plain_predicates = st.one_of(
    st.builds(lambda p, v: {p: v}, st.sampled_from(KEYS), plain_scalars),
    st.builds(
        lambda p, op, v: {p: {op: v}},
        st.sampled_from(KEYS),
        st.sampled_from(("$eq", "$ne", *RANGE_OPS)),
        plain_scalars.filter(lambda v: v is not None),
    ),
    st.builds(
        lambda p, op, v: {p: {op: v}},
        st.sampled_from(KEYS),
        st.sampled_from(("$in", "$nin")),
        st.lists(plain_scalars, max_size=3),
    ),
    st.builds(lambda p, v: {p: {"$exists": v}}, st.sampled_from(KEYS), st.booleans()),
)
RENAMED = {"$le": "$lte", "$ge": "$gte"}


@settings(max_examples=150, deadline=None)
@given(
    docs=st.lists(st.dictionaries(st.sampled_from(KEYS), plain_values, max_size=3), max_size=10),
    condition=st.recursive(
        plain_predicates,
        lambda inner: st.builds(
            lambda op, cs: {op: cs},
            st.sampled_from(("$and", "$or", "$nor")),
            st.lists(inner, min_size=1, max_size=3),
        ),
        max_leaves=3,
    ),
)
def test_model_agrees_with_mongomock_where_mongomock_is_right(
    docs: list[dict[str, Any]], condition: dict[str, Any]
) -> None:
    collection = mongomock.MongoClient().db.c
    numbered = [{"_id": f"{i:02d}", **doc} for i, doc in enumerate(docs)]
    if numbered:
        collection.insert_many([dict(d) for d in numbered])
    mongo_condition = _rename(condition)
    expected = sorted(d["_id"] for d in collection.find(mongo_condition))
    assert sorted(d["_id"] for d in numbered if mongo_model.matches(d, condition)) == expected


def _rename(condition: Any) -> Any:
    if isinstance(condition, dict):
        return {RENAMED.get(k, k): _rename(v) for k, v in condition.items()}
    if isinstance(condition, list):
        return [_rename(v) for v in condition]
    return condition


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"a": {"$ne": False}}, {"n", "e", "x"}),  # 4 and [] are not false; a missing field is not false
        ({"a": 0}, set()),  # false is not the number 0
        ({"b.c": {"$lte": None}}, {"f", "n", "e", "x"}),  # $lte: null matches missing fields
        ({"a.b": {"$ne": None}}, {"e"}),  # a scalar a has no a.b, which then equals null
        ({"a": {"$in": [[], "x"]}}, {"e"}),  # [] matches the empty array itself
    ],
)
def test_known_mongomock_departures(
    conn: sa.Connection, table: DocumentTable, condition: dict[str, Any], expected: set[str]
) -> None:
    """Where mongomock and MongoDB disagree, the model and the SQL side with MongoDB (its jstests)."""
    docs: list[dict[str, Any]] = [
        {"_id": "f", "a": False},
        {"_id": "n", "a": 4},
        {"_id": "e", "a": []},
        {"_id": "x"},
    ]
    table.insert_many(conn, docs)
    assert {d["_id"] for d in docs if mongo_model.matches(d, condition)} == expected
    assert {d["_id"] for d in table.find(conn, condition)} == expected
