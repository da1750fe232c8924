"""SQLite (JSON1) fragments for document queries: json_extract / json_type / json_each over a TEXT column.

Responsible for the exact spelling that SQLite's expression indexes match (``json_extract(doc, '$.a')``)
and for SQLite's type names; it never decides MongoDB semantics, and never puts a value in SQL text.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from medfabric.docdb.conditions import JsonValue, Kind, RangeOp
from medfabric.docdb.sqlbase import (
    SQL_OPERATORS,
    Dialect,
    IdRef,
    MissingRef,
    Ref,
    SqlContext,
    bracket,
    dump_json,
)

REGEXP_FUNCTION = "medfabric_regexp"
CANONICAL_FUNCTION = "medfabric_json_canonical"
_LABELS: dict[Kind, tuple[str, ...]] = {
    "null": ("null",),
    "bool": ("true", "false"),
    "string": ("text",),
    "int": ("integer",),
    "float": ("real",),
    "object": ("object",),
    "array": ("array",),
}
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# MongoDB's sort order of types: null/missing < numbers < strings < objects < arrays < booleans
_RANK = (
    "CASE {kind} WHEN 'integer' THEN 2 WHEN 'real' THEN 2 WHEN 'text' THEN 3 WHEN 'object' THEN 4 "
    "WHEN 'array' THEN 5 WHEN 'true' THEN 6 WHEN 'false' THEN 6 ELSE 1 END"
)


def json_path(components: Iterable[str]) -> str:
    """The SQLite JSON path of object members, e.g. ``$.study."0008,0060"``."""
    return "$" + "".join(_label(c) for c in components)


def _label(key: str) -> str:
    return "." + key if _PLAIN_KEY.fullmatch(key) else '."' + key + '"'


@dataclass(frozen=True)
class SqlitePath(Ref):
    """The value at a JSON path of the row's ``doc``; ``static`` when the path is known before execution."""

    path_sql: str
    static: str | None = None


@dataclass(frozen=True)
class SqliteElement(Ref):
    """One row of ``json_each`` over an array."""

    alias: str


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def regexp(pattern: str | None, value: Any) -> int:
    """The SQL function behind ``$matches``: an unanchored search, true only for strings."""
    if pattern is None or not isinstance(value, str):
        return 0
    return 1 if _compiled(pattern).search(value) else 0


def canonical(value: Any) -> Any:
    """A JSON value with integral floats written as integers: MongoDB finds [1] equal to [1.0]."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    return value


def canonical_json(text: object) -> str | None:
    """The SQL function behind equality with arrays and objects (SQLite may call it on any value)."""
    if not isinstance(text, str):
        return None
    try:
        return dump_json(canonical(json.loads(text)))
    except ValueError:
        return None


SQL_FUNCTIONS: tuple[tuple[str, int, Callable[..., Any]], ...] = (
    (REGEXP_FUNCTION, 2, regexp),
    (CANONICAL_FUNCTION, 1, canonical_json),
)


def like_to_glob(pattern: str, escape: str | None) -> str:
    """SQL LIKE → GLOB, because SQLite's LIKE ignores ASCII case and MapR's does not."""
    out: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if escape is not None and char == escape:
            char = next(chars, escape)
            out.append(f"[{char}]" if char in "*?[" else char)
        elif char == "%":
            out.append("*")
        elif char == "_":
            out.append("?")
        elif char in "*?[":
            out.append(f"[{char}]")
        else:
            out.append(char)
    return "".join(out)


class SqliteDialect(Dialect):
    name = "sqlite"

    def placeholder(self, name: str) -> str:
        return f":{name}"

    def literal(self, text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    def static_path(self, components: Iterable[str]) -> SqlitePath:
        path = json_path(components)
        return SqlitePath(self.literal(path), path)

    def top(self, key: str) -> Ref:
        return self.static_path([key])

    def member(self, ref: Ref, key: str) -> Ref:
        if isinstance(ref, SqlitePath):
            if ref.static is not None:
                path = ref.static + _label(key)
                return SqlitePath(self.literal(path), path)
            return SqlitePath(f"{ref.path_sql} || {self.literal(_label(key))}")
        if isinstance(ref, SqliteElement):
            return SqlitePath(f"{ref.alias}.fullkey || {self.literal(_label(key))}")
        return MissingRef()

    def element(self, ref: Ref, index: int) -> Ref:
        if isinstance(ref, SqlitePath):
            if ref.static is not None:
                path = f"{ref.static}[{index}]"
                return SqlitePath(self.literal(path), path)
            return SqlitePath(f"{ref.path_sql} || '[{index}]'")
        if isinstance(ref, SqliteElement):
            return SqlitePath(f"{ref.alias}.fullkey || '[{index}]'")
        return MissingRef()

    def any_element(self, ref: Ref, ctx: SqlContext, body: Callable[[Ref], str]) -> str:
        alias = ctx.alias()
        if isinstance(ref, SqlitePath):
            source = f"json_each(doc, {ref.path_sql})"
        elif isinstance(ref, SqliteElement):
            source = f"json_each({ref.alias}.value)"
        else:
            return "FALSE"
        return f"EXISTS (SELECT 1 FROM {source} AS {alias} WHERE {ctx.nested(body)(SqliteElement(alias))})"

    def kind_name(self, ref: Ref) -> str:
        if isinstance(ref, SqlitePath):
            return f"json_type(doc, {ref.path_sql})"
        if isinstance(ref, SqliteElement):
            return f"{ref.alias}.type"
        return "'text'" if isinstance(ref, IdRef) else "NULL"

    def type_label(self, kind: Kind) -> str:
        return f"'{_LABELS[kind][0]}'"

    def is_kind(self, ref: Ref, kinds: Iterable[Kind]) -> str:
        wanted = set(kinds)
        if isinstance(ref, IdRef):
            return "TRUE" if "string" in wanted else "FALSE"
        labels = sorted({label for kind in wanted for label in _LABELS[kind]})
        if not labels or isinstance(ref, MissingRef):
            return "FALSE"
        if len(labels) == 1:
            return f"{self.kind_name(ref)} = '{labels[0]}'"
        return f"{self.kind_name(ref)} IN ({', '.join(repr(label) for label in labels)})"

    def _scalar(self, ref: Ref) -> str:
        if isinstance(ref, SqlitePath):
            return f"json_extract(doc, {ref.path_sql})"
        if isinstance(ref, SqliteElement):
            return f"{ref.alias}.atom"
        return "_id" if isinstance(ref, IdRef) else "NULL"

    def _container(self, ref: Ref) -> str:
        if isinstance(ref, SqliteElement):
            return f"{ref.alias}.value"
        return self._scalar(ref)

    def equals(self, ref: Ref, value: JsonValue, ctx: SqlContext) -> str:
        kind = bracket(value)
        if kind == "null":
            return self.is_kind(ref, ["null"])
        if kind == "bool":
            return (
                f"{self.kind_name(ref)} = '{'true' if value else 'false'}'"
                if not isinstance(ref, (IdRef, MissingRef))
                else "FALSE"
            )
        if kind in ("int", "string"):
            return self.compare(ref, "eq", value, ctx)
        container: Kind = "array" if isinstance(value, list) else "object"
        ctx.needs_functions = True
        param = ctx.bind(dump_json(canonical(value)))
        return (
            f"({self.is_kind(ref, [container])} AND {CANONICAL_FUNCTION}({self._container(ref)}) = {param})"
        )

    def compare(self, ref: Ref, op: RangeOp, value: str | int | float | bool, ctx: SqlContext) -> str:
        sql_op = SQL_OPERATORS[op]
        if isinstance(ref, IdRef):
            return f"_id {sql_op} {ctx.bind(value)}" if isinstance(value, str) else "FALSE"
        if isinstance(ref, MissingRef):
            return "FALSE"
        scalar = self._scalar(ref)
        if isinstance(value, bool):
            return f"({self.is_kind(ref, ['bool'])} AND {scalar} {sql_op} {int(value)})"
        if isinstance(value, str):
            # numbers sort below every string in SQLite: the extra bound keeps an index range within strings
            bound = f" AND {scalar} >= ''" if op in ("lt", "lte") else ""
            return f"({scalar} {sql_op} {ctx.bind(value)}{bound} AND {self.is_kind(ref, ['string'])})"
        bound = f" AND {scalar} < ''" if op in ("gt", "gte") else ""
        return f"({scalar} {sql_op} {ctx.bind(value)}{bound} AND {self.is_kind(ref, ['int', 'float'])})"

    def in_values(self, ref: Ref, values: list[JsonValue], ctx: SqlContext) -> str:
        strings: list[str] = []
        numbers: list[int | float] = []
        others: list[JsonValue] = []
        for value in values:
            kind = bracket(value)
            if kind == "string":
                strings.append(value)
            elif kind == "int":
                numbers.append(value)
            else:
                others.append(value)
        terms: list[str] = []
        scalar = self._scalar(ref)
        if strings and isinstance(ref, IdRef):
            terms.append(f"_id IN ({', '.join(ctx.bind(v) for v in strings)})")
        elif strings and not isinstance(ref, MissingRef):
            terms.append(
                f"({scalar} IN ({', '.join(ctx.bind(v) for v in strings)}) "
                f"AND {self.is_kind(ref, ['string'])})"
            )
        if numbers and not isinstance(ref, (IdRef, MissingRef)):
            terms.append(
                f"({scalar} IN ({', '.join(ctx.bind(v) for v in numbers)}) "
                f"AND {self.is_kind(ref, ['int', 'float'])})"
            )
        terms.extend(self.equals(ref, v, ctx) for v in others)
        return "(" + " OR ".join(terms) + ")" if terms else "FALSE"

    def like(self, ref: Ref, pattern: str, escape: str | None, ctx: SqlContext) -> str:
        glob = ctx.bind(like_to_glob(pattern, escape))
        return f"({self.is_kind(ref, ['string'])} AND {self._scalar(ref)} GLOB {glob})"

    def regex(self, ref: Ref, pattern: str, flags: str, ctx: SqlContext) -> str:
        ctx.needs_functions = True
        full = (f"(?{flags})" if flags else "") + pattern
        return (
            f"({self.is_kind(ref, ['string'])} AND {REGEXP_FUNCTION}({ctx.bind(full)}, {self._scalar(ref)}))"
        )

    def size(self, ref: Ref, arrays_only: bool) -> str:
        if isinstance(ref, IdRef):
            return "NULL" if arrays_only else "length(_id)"
        if isinstance(ref, MissingRef):
            return "NULL"
        if isinstance(ref, SqlitePath):
            array_length = f"json_array_length(doc, {ref.path_sql})"
            keys = f"(SELECT count(*) FROM json_each(doc, {ref.path_sql}))"
        else:
            assert isinstance(ref, SqliteElement)
            array_length = f"json_array_length({ref.alias}.value)"
            keys = f"(SELECT count(*) FROM json_each({ref.alias}.value))"
        kind = self.kind_name(ref)
        if arrays_only:
            return f"CASE {kind} WHEN 'array' THEN {array_length} END"
        return (
            f"CASE {kind} WHEN 'array' THEN {array_length} WHEN 'object' THEN {keys} "
            f"WHEN 'text' THEN length({self._scalar(ref)}) END"
        )

    def sort_terms(self, ref: Ref, descending: bool, ctx: SqlContext) -> list[str]:
        direction = "DESC" if descending else "ASC"
        if isinstance(ref, IdRef):
            return [f"_id {direction}"]
        if not isinstance(ref, SqlitePath):
            return []
        alias = ctx.alias()
        element_rank = _RANK.format(kind=f"{alias}.type")
        element_value = (
            f"CASE WHEN {alias}.type IN ('object', 'array') THEN {alias}.value ELSE {alias}.atom END"
        )
        # an array sorts by its smallest element ascending and by its largest descending
        pick = (
            f"FROM json_each(doc, {ref.path_sql}) AS {alias} "
            f"ORDER BY {element_rank} {direction}, {element_value} {direction} LIMIT 1"
        )
        kind = self.kind_name(ref)
        rank = (
            f"CASE WHEN {kind} = 'array' THEN COALESCE((SELECT {element_rank} {pick}), 0) "
            f"ELSE {_RANK.format(kind=kind)} END"
        )
        value = (
            f"CASE WHEN {kind} = 'array' THEN (SELECT {element_value} {pick}) ELSE {self._scalar(ref)} END"
        )
        return [f"{rank} {direction}", f"{value} {direction}"]

    def field_json(self, key: str) -> str:
        return f"doc -> {self.literal(json_path([key]))}"
