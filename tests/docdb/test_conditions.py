"""Parsing conditions: both syntaxes reduce to the same AST, and malformed ones name their problem."""

from __future__ import annotations

from typing import Any

import pytest

from medfabric.docdb.conditions import And, Compare, Const, Exists, In, Not, parse_condition
from medfabric.docdb.paths import FieldPath, parse_path
from medfabric.errors import InvalidInput

MODALITY, DATE = FieldPath(("modality",)), FieldPath(("study_date",))


def test_field_first_and_operator_first_agree() -> None:
    expected = And((Compare(MODALITY, "eq", "MR"), Compare(DATE, "gt", "20240101")))
    assert parse_condition({"modality": "MR", "study_date": {"$gt": "20240101"}}) == expected
    assert parse_condition({"$eq": {"modality": "MR"}, "$gt": {"study_date": "20240101"}}) == expected
    assert (
        parse_condition({"$and": [{"$eq": {"modality": "MR"}}, {"study_date": {"$gt": "20240101"}}]})
        == expected
    )
    assert (
        parse_condition({"$condition": {"$and": [{"modality": "MR"}, {"$gt": {"study_date": "20240101"}}]}})
        == expected
    )


def test_operator_aliases() -> None:
    assert parse_condition({"a": {"$le": 1}}) == parse_condition({"a": {"$lte": 1}})
    assert parse_condition({"a": {"$ge": 1}}) == parse_condition({"a": {"$gte": 1}})
    assert (
        parse_condition({"a": {"$notin": [1]}})
        == parse_condition({"a": {"$nin": [1]}})
        == Not(In(parse_path("a"), (1,)))
    )
    assert parse_condition({"$notexists": "a"}) == Not(Exists(parse_path("a")))
    assert parse_condition({"a": {"$exists": False}}) == Not(Exists(parse_path("a")))
    assert parse_condition({"a": {"$gt": None}}) == Const(False)
    assert parse_condition(None) == parse_condition({}) == Const(True)


def test_paths() -> None:
    assert parse_path("a.b[2].c").components == ("a", "b", "2", "c")
    assert parse_path("`x.y`.z").components == ("x.y", "z")
    assert str(parse_path("`x.y`.z")) == "`x.y`.z"


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"a": {"$gt": 1, "b": 2}}, "cannot mix operators"),
        ({"a": {"$foo": 1}}, "unknown operator"),
        ({"$in": {"a": 1}}, "needs an array"),
        ({"$and": []}, "non-empty array"),
        ({"$or": {"a": 1}}, "non-empty array"),
        ({"a": {"$between": [1]}}, r"\[low, high\]"),
        ({"a": {"$like": 5}}, "pattern"),
        ({"a": {"$matches": "("}}, "invalid regular expression"),
        ({"a": {"$regex": "x", "$options": "q"}}, "options"),
        ({"a": {"$typeof": "wombat"}}, "unknown type"),
        ({"a": {"$sizeof": -1}}, "non-negative"),
        ({"a": {"$sizeof": {"$in": [1]}}}, "not a comparison"),
        ({"a": {"$exists": "yes"}}, "true or false"),
        ({"a": {"$not": 5}}, "operator expression"),
        ({"a": {"$lt": {"x": 1}}}, r"\$lt on a: comparing with an array or object"),
        ({"a": float("inf")}, "not a JSON number"),
        ({"a": object()}, "not a JSON value"),
        ({"a..b": 1}, "empty component"),
        ({"a.$b": 1}, "operator"),
        ({"`a": 1}, "unclosed"),
        ([1], "JSON object"),
    ],
)
def test_malformed_conditions_name_the_problem(condition: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_condition(condition)
