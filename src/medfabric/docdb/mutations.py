"""OJAI document mutations ($set $put $delete $append $increment $decrement $merge) applied in Python.

Responsible for MapR's rules (e.g. $set refuses to change a field's type, $put replaces anything,
$increment creates a missing field) and for applying all operations or none. It never reads or
writes the database: the table does the read-modify-write under a row lock.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from medfabric.docdb.paths import FieldPath, is_array_index, parse_path
from medfabric.errors import InvalidInput

MutationOp = Literal["$set", "$put", "$delete", "$append", "$increment", "$decrement", "$merge"]
_OPS: tuple[MutationOp, ...] = ("$set", "$put", "$delete", "$append", "$increment", "$decrement", "$merge")
_ABSENT = object()


@dataclass(frozen=True)
class Operation:
    op: MutationOp
    path: FieldPath
    value: Any = None


def parse_mutation(mutation: Mapping[str, Any]) -> list[Operation]:
    """``{"$set": {"a.b": 1}}``, ``{"$set": [{"a": 1}, {"b": 2}]}``, ``{"$delete": ["a", "b"]}``,
    ``{"$increment": "n"}`` (by 1) or ``{"$increment": {"n": 5}}``; operations apply in order."""
    if not isinstance(mutation, Mapping) or not mutation:
        raise InvalidInput("a mutation must be a non-empty JSON object of operations such as {'$set': {...}}")
    operations: list[Operation] = []
    for op, spec in mutation.items():
        if op not in _OPS:
            raise InvalidInput(f"unknown mutation {op!r} (one of {', '.join(_OPS)})")
        operations.extend(_parse_op(op, spec))
    return operations


def _parse_op(op: MutationOp, spec: Any) -> list[Operation]:
    if op in ("$delete", "$increment", "$decrement") and isinstance(spec, str):
        return [_operation(op, spec, 1)]
    if (
        op in ("$delete", "$increment", "$decrement")
        and isinstance(spec, list)
        and all(isinstance(item, str) for item in spec)
    ):
        return [_operation(op, item, 1) for item in spec]
    items = spec if isinstance(spec, list) else [spec]
    operations: list[Operation] = []
    for item in items:
        if not isinstance(item, Mapping) or not item:
            raise InvalidInput(f"{op} needs {{'field.path': value}} (or a list of them), not {item!r}")
        operations.extend(_operation(op, path, value) for path, value in item.items())
    return operations


def _operation(op: MutationOp, path_text: str, value: Any) -> Operation:
    path = parse_path(path_text)
    if path.components[0] == "_id":
        raise InvalidInput(f"{op} cannot change _id")
    if op in ("$increment", "$decrement") and (
        isinstance(value, bool) or not isinstance(value, (int, float))
    ):
        raise InvalidInput(f"{op} on {path} needs a number, not {value!r}")
    if op == "$merge" and not isinstance(value, Mapping):
        raise InvalidInput(f"$merge on {path} needs a JSON object, not {value!r}")
    return Operation(op, path, value)


def apply_mutation(document: Mapping[str, Any], operations: list[Operation]) -> dict[str, Any]:
    """A new document with every operation applied; the input is left untouched."""
    result = copy.deepcopy(dict(document))
    for operation in operations:
        _apply(result, operation)
    return result


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "map"


def _apply(document: dict[str, Any], operation: Operation) -> None:
    op, path = operation.op, operation.path
    if op == "$delete":
        parent = _parent(document, path, create=False, replace=False)
        if parent is not None:
            _remove(parent, path.components[-1])
        return
    parent = _parent(document, path, create=True, replace=op == "$put")
    assert parent is not None
    key = path.components[-1]
    current = _get(parent, key)
    value = copy.deepcopy(operation.value)
    if op == "$set" and current is not _ABSENT and current is not None and _kind(current) != _kind(value):
        raise InvalidInput(f"$set cannot change {path} from {_kind(current)} to {_kind(value)} (use $put)")
    if op == "$append":
        value = _appended(path, current, value)
    elif op == "$merge":
        if current is _ABSENT:
            value = dict(value)
        elif isinstance(current, dict):
            value = {**current, **value}
        else:
            raise InvalidInput(f"$merge on {path}: the field is a {_kind(current)}, not a map")
    elif op in ("$increment", "$decrement"):
        step = value if op == "$increment" else -value
        if current is _ABSENT:
            value = step
        elif isinstance(current, (int, float)) and not isinstance(current, bool):
            value = current + step
        else:
            raise InvalidInput(f"{op} on {path}: the field is a {_kind(current)}, not a number")
    _put(parent, key, value, path)


def _appended(path: FieldPath, current: Any, value: Any) -> Any:
    if current is _ABSENT:
        return value if isinstance(value, (list, str)) else [value]
    if isinstance(current, list):
        return current + (value if isinstance(value, list) else [value])
    if isinstance(current, str) and isinstance(value, str):
        return current + value
    raise InvalidInput(f"$append on {path}: cannot append a {_kind(value)} to a {_kind(current)}")


def _parent(
    document: dict[str, Any], path: FieldPath, *, create: bool, replace: bool
) -> dict[str, Any] | list[Any] | None:
    """The container of the path's last component, creating maps on the way when asked.

    ``replace`` ($put) turns whatever lies in the way into a map, as OJAI's setOrReplace does."""
    node: dict[str, Any] | list[Any] = document
    components = path.components
    for depth, key in enumerate(components[:-1]):
        child = _get(node, key)
        through = ".".join(components[: depth + 1])
        if isinstance(child, dict) or (isinstance(child, list) and is_array_index(components[depth + 1])):
            node = child
            continue
        if not create:
            return None
        if child is not _ABSENT and not replace:
            what = (
                "an array (address its elements by index)" if isinstance(child, list) else f"a {_kind(child)}"
            )
            raise InvalidInput(f"{path}: {through} is {what}, not a map")
        fresh: dict[str, Any] = {}
        _put(node, key, fresh, path)
        node = fresh
    return node


def _get(node: dict[str, Any] | list[Any], key: str) -> Any:
    if isinstance(node, dict):
        return node.get(key, _ABSENT)
    if is_array_index(key) and int(key) < len(node):
        return node[int(key)]
    return _ABSENT


def _put(node: dict[str, Any] | list[Any], key: str, value: Any, path: FieldPath) -> None:
    if isinstance(node, dict):
        node[key] = value
    elif is_array_index(key) and int(key) < len(node):
        node[int(key)] = value
    else:
        raise InvalidInput(f"{path}: array index {key} is out of range")


def _remove(node: dict[str, Any] | list[Any], key: str) -> None:
    if isinstance(node, dict):
        node.pop(key, None)
    elif is_array_index(key) and int(key) < len(node):
        del node[int(key)]
