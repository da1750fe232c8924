"""PostgreSQL (JSONB) fragments for document queries: ``->`` chains, jsonb_typeof, jsonb_array_elements.

Responsible for the exact spelling that PostgreSQL's expression indexes match (``doc->'a'->'b'``)
and for JSONB's type names; it never decides MongoDB semantics, and never puts a value in SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

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

_LABELS: dict[Kind, str] = {
    "null": "null",
    "bool": "boolean",
    "string": "string",
    "int": "number",
    "float": "number",
    "object": "object",
    "array": "array",
}
_RANK = (
    "CASE jsonb_typeof({value}) WHEN 'number' THEN 2 WHEN 'string' THEN 3 WHEN 'object' THEN 4 "
    "WHEN 'array' THEN 5 WHEN 'boolean' THEN 6 ELSE 1 END"
)
_LEADING_OPTIONS = re.compile(r"^\(\?([a-z]+)\)")


@dataclass(frozen=True)
class PgJson(Ref):
    """A jsonb expression; NULL when the value is missing."""

    expr: str


def regex_options(pattern: str, flags: str) -> str:
    """PCRE-style flags → an ARE with embedded options (PostgreSQL's ``.`` matches newlines by default)."""
    match = _LEADING_OPTIONS.match(pattern)
    if match and set(match.group(1)) <= set("imsx"):
        flags, pattern = flags + match.group(1), pattern[match.end() :]
    multiline, dotall = "m" in flags, "s" in flags
    newline = {(False, False): "p", (True, False): "n", (False, True): "s", (True, True): "w"}[
        (multiline, dotall)
    ]
    return f"(?{newline}{'i' if 'i' in flags else ''}{'x' if 'x' in flags else ''})" + pattern


class PostgresDialect(Dialect):
    name = "postgresql"

    def placeholder(self, name: str) -> str:
        return f"%({name})s"

    def literal(self, text: str) -> str:
        return "'" + text.replace("'", "''").replace("%", "%%") + "'"

    def static_path(self, components: Iterable[str]) -> PgJson:
        return PgJson("doc" + "".join(f"->{self.literal(c)}" for c in components))

    def top(self, key: str) -> Ref:
        return self.static_path([key])

    def member(self, ref: Ref, key: str) -> Ref:
        return PgJson(f"{ref.expr}->{self.literal(key)}") if isinstance(ref, PgJson) else MissingRef()

    def element(self, ref: Ref, index: int) -> Ref:
        return PgJson(f"{ref.expr}->{index}") if isinstance(ref, PgJson) else MissingRef()

    def any_element(self, ref: Ref, ctx: SqlContext, body: Callable[[Ref], str]) -> str:
        if not isinstance(ref, PgJson):
            return "FALSE"
        alias = ctx.alias()
        return (
            f"EXISTS (SELECT 1 FROM jsonb_array_elements({ref.expr}) AS {alias}(v) "
            f"WHERE {ctx.nested(body)(PgJson(f'{alias}.v'))})"
        )

    def elements_include(self, ref: Ref, values: list[JsonValue], ctx: SqlContext) -> str | None:
        # JSONB containment of a one-element array is element equality, for scalars only
        if not isinstance(ref, PgJson) or not values or any(isinstance(v, (list, dict)) for v in values):
            return None
        terms = [f"{ref.expr} @> {self._jsonb([value], ctx)}" for value in values]
        return terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")"

    def kind_name(self, ref: Ref) -> str:
        if isinstance(ref, PgJson):
            return f"jsonb_typeof({ref.expr})"
        return "'string'" if isinstance(ref, IdRef) else "NULL"

    def type_label(self, kind: Kind) -> str:
        return f"'{_LABELS[kind]}'"

    def is_kind(self, ref: Ref, kinds: Iterable[Kind]) -> str:
        wanted = set(kinds)
        if isinstance(ref, IdRef):
            return "TRUE" if "string" in wanted else "FALSE"
        if not wanted or not isinstance(ref, PgJson):
            return "FALSE"
        terms: list[str] = []
        labels = sorted({_LABELS[k] for k in wanted if k not in ("int", "float")})
        if labels:
            terms.append(f"jsonb_typeof({ref.expr}) IN ({', '.join(repr(label) for label in labels)})")
        numbers = wanted & {"int", "float"}
        if numbers == {"int", "float"}:
            terms.append(f"jsonb_typeof({ref.expr}) = 'number'")
        elif numbers:
            # jsonb keeps a number's text: 1.0 stays a float, 1 an integer
            match = "!~" if numbers == {"int"} else "~"
            terms.append(f"(jsonb_typeof({ref.expr}) = 'number' AND ({ref.expr})::text {match} '[.eE]')")
        return terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")"

    def _jsonb(self, value: JsonValue, ctx: SqlContext) -> str:
        return f"CAST({ctx.bind(dump_json(value))} AS jsonb)"

    def equals(self, ref: Ref, value: JsonValue, ctx: SqlContext) -> str:
        if isinstance(ref, IdRef):
            return f"_id = {ctx.bind(value)}" if isinstance(value, str) else "FALSE"
        if not isinstance(ref, PgJson):
            return "FALSE"
        return f"{ref.expr} = {self._jsonb(value, ctx)}"

    def compare(self, ref: Ref, op: RangeOp, value: str | int | float | bool, ctx: SqlContext) -> str:
        if op == "eq":
            return self.equals(ref, value, ctx)
        sql_op = SQL_OPERATORS[op]
        if isinstance(ref, IdRef):
            return f"_id {sql_op} {ctx.bind(value)}" if isinstance(value, str) else "FALSE"
        if not isinstance(ref, PgJson):
            return "FALSE"
        kind = bracket(value)
        assert kind is not None and kind != "null"
        same_type = f"jsonb_typeof({ref.expr}) = '{_LABELS[kind]}'"
        return f"({ref.expr} {sql_op} {self._jsonb(value, ctx)} AND {same_type})"

    def in_values(self, ref: Ref, values: list[JsonValue], ctx: SqlContext) -> str:
        if isinstance(ref, IdRef):
            strings = [v for v in values if isinstance(v, str)]
            return f"_id IN ({', '.join(ctx.bind(v) for v in strings)})" if strings else "FALSE"
        if not isinstance(ref, PgJson) or not values:
            return "FALSE"
        return f"{ref.expr} IN ({', '.join(self._jsonb(v, ctx) for v in values)})"

    def _text(self, ref: Ref) -> str:
        if isinstance(ref, IdRef):
            return "_id"
        assert isinstance(ref, PgJson)
        return f"({ref.expr} #>> '{{}}')"

    def like(self, ref: Ref, pattern: str, escape: str | None, ctx: SqlContext) -> str:
        if isinstance(ref, MissingRef):
            return "FALSE"
        return (
            f"({self.is_kind(ref, ['string'])} AND {self._text(ref)} LIKE {ctx.bind(pattern)} "
            f"ESCAPE {ctx.bind(escape or '')})"
        )

    def regex(self, ref: Ref, pattern: str, flags: str, ctx: SqlContext) -> str:
        if isinstance(ref, MissingRef):
            return "FALSE"
        return (
            f"({self.is_kind(ref, ['string'])} AND "
            f"{self._text(ref)} ~ {ctx.bind(regex_options(pattern, flags))})"
        )

    def size(self, ref: Ref, arrays_only: bool) -> str:
        if isinstance(ref, IdRef):
            return "NULL" if arrays_only else "length(_id)"
        if not isinstance(ref, PgJson):
            return "NULL"
        value = ref.expr
        if arrays_only:
            return f"CASE jsonb_typeof({value}) WHEN 'array' THEN jsonb_array_length({value}) END"
        return (
            f"CASE jsonb_typeof({value}) WHEN 'array' THEN jsonb_array_length({value}) "
            f"WHEN 'object' THEN (SELECT count(*) FROM jsonb_object_keys({value})) "
            f"WHEN 'string' THEN length({value} #>> '{{}}') END"
        )

    def sort_terms(self, ref: Ref, descending: bool, ctx: SqlContext) -> list[str]:
        direction = "DESC" if descending else "ASC"
        if isinstance(ref, IdRef):
            return [f"_id {direction}"]
        if not isinstance(ref, PgJson):
            return []
        alias = ctx.alias()
        element_rank = _RANK.format(value=f"{alias}.v")
        pick = (
            f"FROM jsonb_array_elements({ref.expr}) AS {alias}(v) "
            f"ORDER BY {element_rank} {direction}, {alias}.v {direction} LIMIT 1"
        )
        is_array = f"jsonb_typeof({ref.expr}) = 'array'"
        rank = (
            f"CASE WHEN {is_array} THEN COALESCE((SELECT {element_rank} {pick}), 0) "
            f"ELSE {_RANK.format(value=ref.expr)} END"
        )
        # JSON null must sort with missing fields, as SQL NULL
        value = f"NULLIF(CASE WHEN {is_array} THEN (SELECT {alias}.v {pick}) ELSE {ref.expr} END, 'null')"
        return [f"{rank} {direction}", f"{value} {direction}"]

    def opaque(self, predicate: str) -> str:
        # otherwise PostgreSQL mines the exact predicate for extra bitmap scans of the value index
        return f"(({predicate}) IS TRUE)"

    def field_json(self, key: str) -> str:
        return f"(doc->{self.literal(key)})::text"
