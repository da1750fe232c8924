"""A small, slow, obviously-written model of MongoDB's find() matching, the oracle of the differential tests.

Written from MongoDB's manual and pinned by the cases of MongoDB's own jstests (test_semantics.py);
mongomock is a second opinion only where it follows MongoDB (see test_differential.py). Test-only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

MISSING = object()
ORDERED_KEYS = [True]  # PostgreSQL's JSONB forgets key order: its tests compare objects without it
_RANGE = {"$lt": "lt", "$le": "lte", "$lte": "lte", "$gt": "gt", "$ge": "gte", "$gte": "gte"}
TYPE_NAMES = {
    "null": {"null"},
    "bool": {"bool"},
    "boolean": {"bool"},
    "string": {"string"},
    "int": {"int"},
    "long": {"int"},
    "double": {"float"},
    "float": {"float"},
    "number": {"int", "float"},
    "object": {"object"},
    "map": {"object"},
    "array": {"array"},
}


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _bracket(value: Any) -> str:
    k = kind(value)
    return "number" if k in ("int", "float") else k


def equal(a: Any, b: Any) -> bool:
    if _bracket(a) != _bracket(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        same_keys = list(a) == list(b) if ORDERED_KEYS[0] else sorted(a) == sorted(b)
        return same_keys and all(equal(a[k], b[k]) for k in a)
    return bool(a == b)


def compare(value: Any, op: str, operand: Any) -> bool:
    if operand is None:
        return op in ("lte", "gte") and value is None
    if _bracket(value) != _bracket(operand) or isinstance(value, (list, dict)):
        return False
    outcomes = {
        "lt": value < operand,
        "lte": value <= operand,
        "gt": value > operand,
        "gte": value >= operand,
    }
    return bool(outcomes[op])


def values(document: Any, components: list[str]) -> Iterator[Any]:
    """The values a dotted path reaches; MISSING where it ends in nothing."""
    if not components:
        yield document
        return
    key, rest = components[0], components[1:]
    if isinstance(document, dict):
        yield from values(document.get(key, MISSING), rest)
    elif isinstance(document, list):
        for element in document:
            if isinstance(element, dict):
                yield from values(element.get(key, MISSING), rest)
        if key.isdigit():
            yield from values(document[int(key)] if int(key) < len(document) else MISSING, rest)
    else:
        yield MISSING


def _leaf(value: Any, predicate: Any, missing: bool, elementwise: bool = True) -> bool:
    if value is MISSING:
        return missing
    if predicate(value):
        return True
    return elementwise and isinstance(value, list) and any(predicate(e) for e in value)


def matches(document: dict[str, Any], condition: Mapping[str, Any]) -> bool:
    return all(_top(document, key, operand) for key, operand in condition.items())


def _top(document: dict[str, Any], key: str, operand: Any) -> bool:
    if key == "$and":
        return all(matches(document, c) for c in operand)
    if key == "$or":
        return any(matches(document, c) for c in operand)
    if key == "$nor":
        return not any(matches(document, c) for c in operand)
    if key == "$not":
        return not matches(document, operand)
    if key.startswith("$"):  # OJAI operator-first
        return all(_field(document, path, {key: value}) for path, value in operand.items())
    return _field(document, key, operand)


def _field(document: dict[str, Any], path: str, operand: Any) -> bool:
    if isinstance(operand, dict) and operand and all(k.startswith("$") for k in operand):
        return all(
            _operator(document, path, op, value, operand) for op, value in operand.items() if op != "$options"
        )
    return _operator(document, path, "$eq", operand, {})


_NEGATIONS = {"$ne": "$eq", "$nin": "$in", "$notin": "$in"}


def _operator(
    document: dict[str, Any], path: str, op: str, operand: Any, siblings: Mapping[str, Any]
) -> bool:
    if op in _NEGATIONS:
        return not _operator(document, path, _NEGATIONS[op], operand, siblings)
    if op == "$not":
        return not _field(document, path, operand)
    if op == "$between":
        return _operator(document, path, "$gte", operand[0], siblings) and _operator(
            document, path, "$lte", operand[1], siblings
        )
    if op == "$all":
        return bool(operand) and all(_operator(document, path, "$eq", v, siblings) for v in operand)
    reached = list(values(document, path.split(".")))
    if op == "$exists":
        return any(v is not MISSING for v in reached) == bool(operand)
    predicate = _predicate(op, operand, siblings)
    missing = (operand is None and (op == "$eq" or _RANGE.get(op) in ("lte", "gte"))) or (
        op == "$in" and None in operand
    )
    elementwise = op not in ("$size", "$elemMatch")
    return any(_leaf(v, predicate, missing, elementwise) for v in reached)


def _single(value: Any, operators: Mapping[str, Any]) -> bool:
    """Operators applied to one array element itself (a value-form $elemMatch): no traversal."""
    for op, operand in operators.items():
        if op == "$options":
            continue
        if op in _NEGATIONS:
            ok = not _predicate(_NEGATIONS[op], operand, operators)(value)
        elif op == "$not":
            ok = not _single(value, operand)
        elif op == "$exists":
            ok = bool(operand)
        elif op == "$between":
            ok = compare(value, "gte", operand[0]) and compare(value, "lte", operand[1])
        else:
            ok = _predicate(op, operand, operators)(value)
        if not ok:
            return False
    return True


def _predicate(op: str, operand: Any, siblings: Mapping[str, Any]) -> Callable[[Any], bool]:
    """The test of one present value for an operator."""
    if op == "$eq":
        return lambda v: equal(v, operand)
    if op in _RANGE:
        return lambda v: compare(v, _RANGE[op], operand)
    if op == "$in":
        return lambda v: any(equal(v, o) for o in operand)
    if op in ("$type", "$typeof"):
        names = set().union(*(TYPE_NAMES[n] for n in (operand if isinstance(operand, list) else [operand])))
        return lambda v: kind(v) in names
    if op == "$size":
        return lambda v: isinstance(v, list) and len(v) == operand
    if op in ("$regex", "$matches"):
        flags = siblings.get("$options", "")
        pattern = re.compile((f"(?{flags})" if flags else "") + operand)
        return lambda v: isinstance(v, str) and pattern.search(v) is not None
    if op == "$like":
        regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in operand)
        return lambda v: isinstance(v, str) and re.fullmatch(regex, v, re.DOTALL) is not None
    if op == "$elemMatch":
        keys = list(operand)
        if all(k.startswith("$") for k in keys) and not {"$and", "$or", "$nor"} & set(keys):
            return lambda v: isinstance(v, list) and any(_single(e, operand) for e in v)
        return lambda v: (
            isinstance(v, list)
            and any(
                isinstance(e, (dict, list)) and matches(e if isinstance(e, dict) else {}, operand) for e in v
            )
        )
    raise ValueError(f"the model does not know {op}")
