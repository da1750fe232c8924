"""Query conditions: parse MongoDB's field-first and OJAI's operator-first JSON into one small AST.

Responsible for rejecting every malformed condition with an InvalidInput that names the problem,
and for reducing the operator zoo ($ne, $nin, $notlike, $between, ...) to a few node types.
It never produces SQL and never touches a database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from medfabric.docdb.paths import FieldPath, parse_path
from medfabric.errors import InvalidInput

JsonValue: TypeAlias = Any  # None | bool | int | float | str | list[JsonValue] | dict[str, JsonValue]
RangeOp = Literal["eq", "lt", "lte", "gt", "gte"]
Kind = Literal["null", "bool", "string", "int", "float", "object", "array"]
ALL_NUMBERS: frozenset[Kind] = frozenset({"int", "float"})


@dataclass(frozen=True)
class Compare:
    """``path <op> value`` under MongoDB's rules: same type bracket, any array element may match."""

    path: FieldPath
    op: RangeOp
    value: JsonValue


@dataclass(frozen=True)
class In:
    path: FieldPath
    values: tuple[JsonValue, ...]


@dataclass(frozen=True)
class Exists:
    path: FieldPath


@dataclass(frozen=True)
class Like:
    """SQL LIKE (``%`` any run, ``_`` one character), case-sensitive, on strings."""

    path: FieldPath
    pattern: str
    escape: str | None


@dataclass(frozen=True)
class Regex:
    """A regular expression searched (not anchored) in strings; flags among i, m, s, x."""

    path: FieldPath
    pattern: str
    flags: str


@dataclass(frozen=True)
class TypeIs:
    path: FieldPath
    kinds: frozenset[Kind]


@dataclass(frozen=True)
class SizeIs:
    """The size of the value itself: elements of an array, keys of a map, characters of a string."""

    path: FieldPath
    bounds: tuple[tuple[RangeOp, int], ...]
    arrays_only: bool


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Const:
    value: bool


@dataclass(frozen=True)
class ElemMatch:
    """Some element of the array at ``path`` satisfies ``condition``.

    With ``on_values`` the condition's operators apply to each element itself (``{'$gt': 1}``); otherwise
    it is a condition on the fields of sub-document elements (``{'n': 1, 'desc': 'T1'}``)."""

    path: FieldPath
    condition: Node
    on_values: bool


Predicate: TypeAlias = Compare | In | Exists | Like | Regex | TypeIs | SizeIs | ElemMatch
Node: TypeAlias = Predicate | Not | And | Or | Const

_RANGE_ALIASES: dict[str, RangeOp] = {
    "$eq": "eq",
    "$lt": "lt",
    "$le": "lte",
    "$lte": "lte",
    "$gt": "gt",
    "$ge": "gte",
    "$gte": "gte",
}
# OJAI's type names (org.ojai.Value.Type), MongoDB's aliases and BSON type numbers, all lower-cased
_TYPE_NAMES: dict[str, frozenset[Kind]] = {
    "null": frozenset({"null"}),
    "boolean": frozenset({"bool"}),
    "bool": frozenset({"bool"}),
    "string": frozenset({"string"}),
    "byte": frozenset({"int"}),
    "short": frozenset({"int"}),
    "int": frozenset({"int"}),
    "integer": frozenset({"int"}),
    "long": frozenset({"int"}),
    "float": frozenset({"float"}),
    "double": frozenset({"float"}),
    "decimal": frozenset({"float"}),
    "number": ALL_NUMBERS,
    "map": frozenset({"object"}),
    "object": frozenset({"object"}),
    "array": frozenset({"array"}),
    # types JSON cannot hold: valid names that match nothing
    "date": frozenset(),
    "time": frozenset(),
    "timestamp": frozenset(),
    "interval": frozenset(),
    "binary": frozenset(),
    "bindata": frozenset(),
    "objectid": frozenset(),
    "regex": frozenset(),
}
_BSON_TYPE_NUMBERS: dict[int, frozenset[Kind]] = {
    1: frozenset({"float"}),
    2: frozenset({"string"}),
    3: frozenset({"object"}),
    4: frozenset({"array"}),
    8: frozenset({"bool"}),
    10: frozenset({"null"}),
    16: frozenset({"int"}),
    18: frozenset({"int"}),
    19: frozenset({"float"}),
}
_REGEX_FLAGS = frozenset("imsx")
_PATTERN_FLAGS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"), (re.VERBOSE, "x"))


def condition_from_text(condition: Mapping[str, Any] | str | None) -> Mapping[str, Any] | None:
    """A condition as a user typed it (JSON text, as the CLI takes it) or already as a mapping."""
    if condition is None or isinstance(condition, Mapping):
        return condition
    if not condition.strip():
        return None
    try:
        parsed = json.loads(condition)
    except json.JSONDecodeError as error:
        raise InvalidInput(f"the condition is not valid JSON: {error.msg} at position {error.pos}") from None
    if not isinstance(parsed, dict):
        raise InvalidInput('a condition is a JSON object, e.g. {"modality": "MR"}')
    return parsed


def parse_condition(condition: Mapping[str, Any] | None) -> Node:
    """The AST of a condition; ``None`` or ``{}`` matches every document."""
    if condition is None:
        return Const(True)
    if not isinstance(condition, Mapping):
        raise InvalidInput(f"a condition must be a JSON object, not {type(condition).__name__}")
    return _conjunction([_top_level(key, value) for key, value in condition.items()])


def _conjunction(nodes: Sequence[Node]) -> Node:
    flat: list[Node] = []
    for node in nodes:
        flat.extend(node.children if isinstance(node, And) else (node,))
    if not flat:
        return Const(True)
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def _top_level(key: str, value: Any) -> Node:
    if not isinstance(key, str):
        raise InvalidInput(f"condition keys must be strings, not {key!r}")
    if not key.startswith("$"):
        return _field_condition(parse_path(key), value)
    if key in ("$and", "$or", "$nor"):
        if not isinstance(value, list) or not value:
            raise InvalidInput(f"{key} needs a non-empty array of conditions")
        children = tuple(parse_condition(_mapping(key, child)) for child in value)
        if key == "$and":
            return _conjunction(children)
        either = children[0] if len(children) == 1 else Or(children)
        return Not(either) if key == "$nor" else either
    if key == "$not":
        return Not(parse_condition(_mapping(key, value)))
    if key in ("$exists", "$notexists"):
        paths = value if isinstance(value, list) else [value]
        if not paths:
            raise InvalidInput(f"{key} needs a field path or an array of them")
        nodes = [Exists(parse_path(p)) for p in paths]
        return _conjunction([Not(n) for n in nodes] if key == "$notexists" else nodes)
    if key == "$condition":
        return parse_condition(_mapping(key, value))
    # OJAI operator-first: {"$gt": {"study_date": "20240101", ...}}
    fields = _mapping(key, value)
    if not fields:
        raise InvalidInput(f"{key} needs at least one field")
    return _conjunction([_operator(parse_path(path), key, operand, {}) for path, operand in fields.items()])


def _mapping(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{key} needs a JSON object, not {value!r}")
    return value


def _field_condition(path: FieldPath, value: Any) -> Node:
    if isinstance(value, Mapping) and value and any(isinstance(k, str) and k.startswith("$") for k in value):
        if not all(isinstance(k, str) and k.startswith("$") for k in value):
            raise InvalidInput(f"condition on {path}: cannot mix operators and field names in {value!r}")
        siblings = dict(value)
        if "$options" in siblings and not {"$regex", "$matches", "$notmatches"} & siblings.keys():
            raise InvalidInput(f"condition on {path}: $options is only valid beside $regex or $matches")
        return _conjunction(
            [_operator(path, op, operand, siblings) for op, operand in value.items() if op != "$options"]
        )
    if isinstance(value, re.Pattern):
        return _pattern(path, value)
    return Compare(path, "eq", _literal(path, value))


def _pattern(path: FieldPath, pattern: re.Pattern[Any]) -> Regex:
    """A compiled Python pattern (as pymongo users pass them) means a regular expression match."""
    if not isinstance(pattern.pattern, str):
        raise InvalidInput(f"condition on {path}: a regular expression must be text")
    flags = "".join(letter for flag, letter in _PATTERN_FLAGS if pattern.flags & flag)
    return Regex(path, pattern.pattern, flags)


def _operator(path: FieldPath, op: str, operand: Any, siblings: Mapping[str, Any]) -> Node:
    if op in _RANGE_ALIASES:
        return _range(path, _RANGE_ALIASES[op], operand, op)
    if op == "$ne":
        return Not(_range(path, "eq", operand, op))
    if op in ("$in", "$nin", "$notin"):
        if not isinstance(operand, list):
            raise InvalidInput(f"{op} on {path} needs an array of values, not {operand!r}")
        patterns = [_pattern(path, v) for v in operand if isinstance(v, re.Pattern)]
        plain = In(path, _values(path, op, [v for v in operand if not isinstance(v, re.Pattern)]))
        either: Node = Or((plain, *patterns)) if patterns else plain
        return either if op == "$in" else Not(either)
    if op == "$between":
        if not isinstance(operand, list) or len(operand) != 2:
            raise InvalidInput(f"$between on {path} needs [low, high], not {operand!r}")
        return And((_range(path, "gte", operand[0], op), _range(path, "lte", operand[1], op)))
    if op == "$exists":
        return Exists(path) if _truth(path, op, operand) else Not(Exists(path))
    if op == "$notexists":
        return Not(Exists(path)) if _truth(path, op, operand) else Exists(path)
    if op in ("$like", "$notlike"):
        like = _like(path, op, operand)
        return Not(like) if op == "$notlike" else like
    if op in ("$matches", "$notmatches", "$regex"):
        regex = _regex(path, op, operand, siblings.get("$options", ""))
        return Not(regex) if op == "$notmatches" else regex
    if op in ("$typeof", "$type"):
        return TypeIs(path, _kinds(path, op, operand))
    if op in ("$nottypeof",):
        return Not(TypeIs(path, _kinds(path, op, operand)))
    if op in ("$sizeof", "$size"):
        return SizeIs(path, _size_bounds(path, op, operand), arrays_only=op == "$size")
    if op == "$all":
        wanted = _values(path, op, operand)
        if not wanted:
            return Const(False)  # MongoDB: $all of nothing matches no document
        return _conjunction([_all_item(path, item) for item in wanted])
    if op == "$elemMatch":
        return _elem_match(path, operand)
    if op == "$not":
        if isinstance(operand, re.Pattern):
            return Not(_pattern(path, operand))
        if isinstance(operand, Mapping) and operand and all(str(k).startswith("$") for k in operand):
            return Not(_field_condition(path, operand))
        raise InvalidInput(
            f"$not on {path} needs an operator expression such as {{'$gt': 5}}, not {operand!r}"
        )
    raise InvalidInput(f"unknown operator {op} in the condition on {path}")


ELEMENT = FieldPath(())  # the array element itself, inside a value-form $elemMatch
_LOGICAL = frozenset({"$and", "$or", "$nor"})


def _elem_match(path: FieldPath, operand: Any) -> Node:
    if not isinstance(operand, Mapping) or not operand:
        raise InvalidInput(f"$elemMatch on {path} needs a non-empty condition object, not {operand!r}")
    keys = [str(k) for k in operand]
    if all(k.startswith("$") for k in keys) and not _LOGICAL & set(keys):
        return ElemMatch(path, _field_condition(ELEMENT, operand), on_values=True)
    return ElemMatch(path, parse_condition(operand), on_values=False)


def _all_item(path: FieldPath, item: JsonValue) -> Node:
    if isinstance(item, dict) and list(item) == ["$elemMatch"]:
        return _elem_match(path, item["$elemMatch"])
    return Compare(path, "eq", item)


def _range(path: FieldPath, op: RangeOp, operand: Any, name: str) -> Node:
    value = _literal(path, operand)
    if op != "eq" and isinstance(value, (list, dict)):
        raise InvalidInput(f"{name} on {path}: comparing with an array or object is not supported")
    if value is None and op in ("lt", "gt"):
        return Const(False)  # nothing sorts strictly below or above null in its bracket
    if value is None:
        return Compare(path, "eq", None)
    return Compare(path, op, value)


def _values(path: FieldPath, op: str, operand: Any) -> tuple[JsonValue, ...]:
    if not isinstance(operand, list):
        raise InvalidInput(f"{op} on {path} needs an array of values, not {operand!r}")
    return tuple(_literal(path, v) for v in operand)


def _truth(path: FieldPath, op: str, operand: Any) -> bool:
    if isinstance(operand, (bool, int, float)):
        return bool(operand)
    raise InvalidInput(f"{op} on {path} takes true or false, not {operand!r}")


def _like(path: FieldPath, op: str, operand: Any) -> Like:
    pattern, escape = operand, None
    if isinstance(operand, list) and len(operand) == 2:
        pattern, escape = operand
    if not isinstance(pattern, str):
        raise InvalidInput(f"{op} on {path} needs a pattern string (or [pattern, escape]), not {operand!r}")
    if escape is not None and (not isinstance(escape, str) or len(escape) != 1):
        raise InvalidInput(f"{op} on {path}: the escape must be a single character, not {escape!r}")
    return Like(path, pattern, escape)


def _regex(path: FieldPath, op: str, operand: Any, options: Any) -> Regex:
    pattern = operand
    if isinstance(operand, Mapping) and "$regex" in operand:
        pattern, options = operand["$regex"], operand.get("$options", options)
    if not isinstance(pattern, str):
        raise InvalidInput(f"{op} on {path} needs a regular expression string, not {operand!r}")
    if not isinstance(options, str) or not set(options) <= _REGEX_FLAGS:
        raise InvalidInput(f"{op} on {path}: options must be letters among 'imsx', not {options!r}")
    try:
        re.compile(("(?" + "".join(sorted(set(options))) + ")" if options else "") + pattern)
    except re.error as error:
        raise InvalidInput(f"{op} on {path}: invalid regular expression {pattern!r}: {error}") from None
    return Regex(path, pattern, "".join(sorted(set(options))))


def _kinds(path: FieldPath, op: str, operand: Any) -> frozenset[Kind]:
    names = operand if isinstance(operand, list) else [operand]
    kinds: set[Kind] = set()
    for name in names:
        if isinstance(name, str) and name.lower() in _TYPE_NAMES:
            kinds |= _TYPE_NAMES[name.lower()]
        elif isinstance(name, int) and not isinstance(name, bool) and name in _BSON_TYPE_NUMBERS:
            kinds |= _BSON_TYPE_NUMBERS[name]
        else:
            raise InvalidInput(
                f"{op} on {path}: unknown type {name!r} (one of {', '.join(sorted(_TYPE_NAMES))})"
            )
    if not names:
        raise InvalidInput(f"{op} on {path} needs a type name")
    return frozenset(kinds)


def _size_bounds(path: FieldPath, op: str, operand: Any) -> tuple[tuple[RangeOp, int], ...]:
    def size(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != int(value):
            raise InvalidInput(f"{op} on {path} needs a non-negative integer size, not {value!r}")
        return int(value)

    if not isinstance(operand, Mapping):
        return (("eq", size(operand)),)
    if op == "$size" or not operand:
        raise InvalidInput(
            f"{op} on {path} needs a size or comparisons such as {{'$gt': 2}}, not {operand!r}"
        )
    bounds: list[tuple[RangeOp, int]] = []
    for key, value in operand.items():
        if key not in _RANGE_ALIASES:
            raise InvalidInput(f"{op} on {path}: {key!r} is not a comparison ($eq $lt $le $gt $ge ...)")
        bounds.append((_RANGE_ALIASES[key], size(value)))
    return tuple(bounds)


def _literal(path: FieldPath, value: Any) -> JsonValue:
    """Check that a comparison operand is plain JSON (it is sent to the database as JSON)."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidInput(f"condition on {path}: {value!r} is not a JSON number")
        return value
    if isinstance(value, (list, tuple)):
        return [_literal(path, v) for v in value]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise InvalidInput(f"condition on {path}: object keys must be strings")
        return {k: _literal(path, v) for k, v in value.items()}
    raise InvalidInput(f"condition on {path}: {type(value).__name__} is not a JSON value")
