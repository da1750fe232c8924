"""OJAI mutations through DocumentTable.update, and their rules in isolation."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from medfabric.docdb import DocumentTable
from medfabric.docdb.mutations import apply_mutation, parse_mutation
from medfabric.errors import InvalidInput, NotFound

BASE: dict[str, Any] = {
    "_id": "id1",
    "a": {"b": [{"boolean": False}, {"decimal": 123.456}], "c": {"d": 10, "e": "Hello"}},
    "m": "MapR wins",
}


def mutate(mutation: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = apply_mutation(BASE, parse_mutation(mutation))
    return result


@pytest.mark.parametrize(
    ("mutation", "expected_changes"),
    [
        ({"$set": {"a.c.d": 11}}, {"a.c.d": 11}),
        ({"$set": [{"a.c.d": 11}, {"new.field": "x"}]}, {"a.c.d": 11, "new": {"field": "x"}}),
        ({"$put": {"a.c": 5}}, {"a.c": 5}),
        ({"$put": {"m.x": 1}}, {"m": {"x": 1}}),
        ({"$delete": "a.c.e"}, {"a.c": {"d": 10}}),
        ({"$delete": ["m", "a.nope", "zz.top"]}, {"m": None}),
        (
            {"$append": [{"a.b": {"appd": 1}}, {"a.c.e": " MapR"}]},
            {"a.b": [{"boolean": False}, {"decimal": 123.456}, {"appd": 1}], "a.c.e": "Hello MapR"},
        ),
        ({"$append": {"a.b": [1, 2]}}, {"a.b": [{"boolean": False}, {"decimal": 123.456}, 1, 2]}),
        ({"$append": {"list": 5}}, {"list": [5]}),
        ({"$increment": "a.c.d"}, {"a.c.d": 11}),
        ({"$increment": {"a.c.d": 2.5, "count": 3}}, {"a.c.d": 12.5, "count": 3}),
        ({"$decrement": {"a.c.d": 4}}, {"a.c.d": 6}),
        ({"$decrement": "fresh"}, {"fresh": -1}),
        ({"$merge": {"a.c": {"f": 11, "d": 0}}}, {"a.c": {"d": 0, "e": "Hello", "f": 11}}),
        ({"$merge": {"x": {"y": 1}}}, {"x": {"y": 1}}),
        ({"$set": {"a.b.1.decimal": 1.5}}, {"a.b": [{"boolean": False}, {"decimal": 1.5}]}),
    ],
)
def test_mutations_follow_ojai(mutation: dict[str, Any], expected_changes: dict[str, Any]) -> None:
    expected = apply_mutation(BASE, [])
    for dotted, value in expected_changes.items():
        *parents, last = dotted.split(".")
        node = expected
        for key in parents:
            node = node[key]
        if value is None and last == "m":
            del node[last]
        else:
            node[last] = value
    assert mutate(mutation) == expected


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        ({"$set": {"m": 5}}, "from string to number"),
        ({"$set": {"m.x": 5}}, "is a string, not a map"),
        ({"$set": {"a.b.x": 5}}, "is an array"),
        ({"$increment": {"m": 1}}, "not a number"),
        ({"$increment": {"a.c.d": "1"}}, "needs a number"),
        ({"$increment": {"a.c.d": True}}, "needs a number"),
        ({"$append": {"a.c.d": "x"}}, "cannot append"),
        ({"$merge": {"m": {"x": 1}}}, "not a map"),
        ({"$merge": {"a": 1}}, "needs a JSON object"),
        ({"$set": {"_id": "other"}}, "_id"),
        ({"$rename": {"a": "b"}}, "unknown mutation"),
        ({}, "non-empty"),
        ({"$set": "a"}, "needs"),
        ({"$set": {"a.b.5.x": 1}}, "out of range"),
    ],
)
def test_bad_mutations_are_refused(mutation: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        mutate(mutation)


def test_update_through_the_table(conn: sa.Connection, table: DocumentTable) -> None:
    table.insert(conn, BASE)
    updated = table.update(conn, "id1", {"$increment": "a.c.d", "$set": {"status": "read"}})
    assert updated["a"]["c"]["d"] == 11 and updated["status"] == "read"
    assert table.find_by_id(conn, "id1") == updated
    assert table.count(conn, {"a.c.d": 11, "status": "read"}) == 1
    with pytest.raises(InvalidInput):
        table.update(conn, "id1", {"$set": {"status": 1}, "$increment": {"a.c.d": 1}})
    assert table.find_by_id(conn, "id1") == updated  # all or nothing
    with pytest.raises(NotFound):
        table.update(conn, "nope", {"$set": {"x": 1}})
    assert table.update(conn, "nope", {"$increment": "hits"}, upsert=True) == {"_id": "nope", "hits": 1}
