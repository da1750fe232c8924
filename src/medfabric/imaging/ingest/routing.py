"""Routing rules: which volume an instance goes to, from the fabric setting ``medfabric.dicom.routes``.

The setting is a JSON list of rules, tried in order; the first whose condition matches names the
volume. A rule is ``{"volume": NAME, <field>: <condition>, …}`` (or ``{"volume": NAME, "condition":
{…}}``) with MongoDB-style conditions on the instance's snake_case fields, e.g.
``{"volume": "mri_2024", "modality": "MR", "study_date": {"$gte": "20240101", "$lt": "20250101"}}``.
Parsing rejects malformed rules with InvalidInput; matching is pure and never touches the fabric.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medfabric.docdb.conditions import (
    And,
    Compare,
    Const,
    Exists,
    In,
    Like,
    Node,
    Not,
    Or,
    Regex,
    parse_condition,
)
from medfabric.errors import InvalidInput

ROUTABLE_FIELDS = frozenset(
    {
        "patient_id",
        "issuer_of_patient_id",
        "patient_name",
        "patient_birth_date",
        "patient_sex",
        "study_uid",
        "study_date",
        "study_time",
        "accession_number",
        "study_description",
        "referring_physician_name",
        "series_uid",
        "modality",
        "series_number",
        "series_description",
        "body_part_examined",
        "sop_uid",
        "sop_class_uid",
        "instance_number",
        "transfer_syntax",
        "size",
        "source",
    }
)


@dataclass(frozen=True)
class Route:
    volume: str
    condition: Node
    spec: dict[str, Any]  # the rule as written, for display

    def matches(self, fields: Mapping[str, Any]) -> bool:
        return evaluate(self.condition, fields)


def parse_routes(value: str | list[Any] | None) -> list[Route]:
    """Rules from the setting's JSON text (or an already decoded list)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise InvalidInput(
                f"DICOM routing rules are not valid JSON: {error.msg} at {error.pos}"
            ) from None
    if not isinstance(value, list):
        raise InvalidInput('DICOM routing rules are a JSON list of {"volume": …, <conditions>} objects')
    return [_route(number, rule) for number, rule in enumerate(value, start=1)]


def _route(number: int, rule: Any) -> Route:
    if not isinstance(rule, dict) or not isinstance(rule.get("volume"), str) or not rule["volume"]:
        raise InvalidInput(f"routing rule {number} needs a volume name: {rule!r}")
    if "condition" in rule:
        if set(rule) - {"volume", "condition"}:
            raise InvalidInput(
                f"routing rule {number}: give conditions in 'condition' or beside it, not both"
            )
        condition = rule["condition"]
    else:
        condition = {key: value for key, value in rule.items() if key != "volume"}
    if not isinstance(condition, dict):
        raise InvalidInput(f"routing rule {number}: the condition must be a JSON object")
    node = parse_condition(condition)
    _check_node(node, number)
    return Route(rule["volume"], node, dict(rule))


def _check_node(node: Node, number: int) -> None:
    if isinstance(node, (And, Or)):
        for child in node.children:
            _check_node(child, number)
    elif isinstance(node, Not):
        _check_node(node.child, number)
    elif isinstance(node, Const):
        return
    elif isinstance(node, (Compare, In, Exists, Like, Regex)):
        field = ".".join(node.path.components)
        if field not in ROUTABLE_FIELDS:
            known = ", ".join(sorted(ROUTABLE_FIELDS))
            raise InvalidInput(f"routing rule {number}: unknown field {field!r} (one of {known})")
    else:
        raise InvalidInput(f"routing rule {number}: {type(node).__name__} conditions are not supported")


def choose_volume(routes: list[Route], fields: Mapping[str, Any], default: str | None) -> str | None:
    """The first matching rule's volume, else ``default``."""
    for route in routes:
        if route.matches(fields):
            return route.volume
    return default or None


def evaluate(node: Node, fields: Mapping[str, Any]) -> bool:
    """MongoDB's semantics on a flat record of scalars: a missing field is null, and comparisons
    match only within one type bracket (strings with strings, numbers with numbers)."""
    if isinstance(node, Const):
        return node.value
    if isinstance(node, And):
        return all(evaluate(child, fields) for child in node.children)
    if isinstance(node, Or):
        return any(evaluate(child, fields) for child in node.children)
    if isinstance(node, Not):
        return not evaluate(node.child, fields)
    value = fields.get(".".join(node.path.components))
    if isinstance(node, Compare):
        return _compare(value, node.op, node.value)
    if isinstance(node, In):
        return any(_compare(value, "eq", candidate) for candidate in node.values)
    if isinstance(node, Exists):
        return value is not None
    if isinstance(node, Like):
        return isinstance(value, str) and _like_regex(node.pattern, node.escape).fullmatch(value) is not None
    if isinstance(node, Regex):
        flags = sum(getattr(re, flag.upper()) for flag in node.flags)
        return isinstance(value, str) and re.search(node.pattern, value, flags) is not None
    raise InvalidInput(f"{type(node).__name__} conditions are not supported here")


def _compare(value: Any, op: str, operand: Any) -> bool:
    if value is None or operand is None:
        return op in ("eq", "lte", "gte") and value is None and operand is None
    numbers = (int, float)
    same_bracket = (isinstance(value, str) and isinstance(operand, str)) or (
        isinstance(value, numbers)
        and isinstance(operand, numbers)
        and not isinstance(value, bool)
        and not isinstance(operand, bool)
    )
    if not same_bracket:
        return False
    if op == "eq":
        return bool(value == operand)
    if op == "lt":
        return bool(value < operand)
    if op == "lte":
        return bool(value <= operand)
    if op == "gt":
        return bool(value > operand)
    return bool(value >= operand)


def _like_regex(pattern: str, escape: str | None) -> re.Pattern[str]:
    out: list[str] = []
    position = 0
    while position < len(pattern):
        character = pattern[position]
        if escape is not None and character == escape and position + 1 < len(pattern):
            out.append(re.escape(pattern[position + 1]))
            position += 2
            continue
        out.append(".*" if character == "%" else "." if character == "_" else re.escape(character))
        position += 1
    return re.compile("".join(out), re.DOTALL)
